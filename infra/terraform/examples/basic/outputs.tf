# Re-exported so that `terraform output -raw <name>` works here, as the runbooks use it.

output "function_app_name" {
  description = "Name of the Function App."
  value       = module.akv_rotator.function_app_name
}

output "resource_group_name" {
  description = "Resource group of everything akv-rotator runs on."
  value       = azurerm_resource_group.this.name
}

output "identity_principal_id" {
  description = "Object ID of the app's managed identity."
  value       = module.akv_rotator.identity_principal_id
}

output "http_base_url" {
  description = "Base URL of the HTTP routes (https://<app>.azurewebsites.net/api)."
  value       = module.akv_rotator.http_base_url
}

output "storage_account_name" {
  description = "Storage account of the host, the journal and the dead letters."
  value       = module.akv_rotator.storage_account_name
}

output "dead_letter_container" {
  description = "Container of dead-lettered Key Vault events (docs/runbooks/dead-lettered-event.md)."
  value       = module.akv_rotator.dead_letter_container
}

output "application_insights_name" {
  description = "Application Insights component with the app's traces (docs/observability.md)."
  value       = module.akv_rotator.application_insights_name
}

output "system_topic_names" {
  description = "Event Grid system topic of each vault."
  value       = module.akv_rotator.system_topic_names
}
