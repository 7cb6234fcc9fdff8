output "function_app_name" {
  description = "Name of the Function App (az functionapp ... -n)."
  value       = azurerm_function_app_flex_consumption.this.name
}

output "function_app_id" {
  description = "Resource ID of the Function App."
  value       = azurerm_function_app_flex_consumption.this.id
}

output "identity_principal_id" {
  description = "Object ID of the app's system-assigned managed identity (the identity every role here is given to)."
  value       = azurerm_function_app_flex_consumption.this.identity[0].principal_id
}

output "http_base_url" {
  description = "Base URL of the HTTP routes, e.g. <http_base_url>/secrets/NAME/rotate; also what `akv-rotator --api` takes without /api."
  value       = "https://${azurerm_function_app_flex_consumption.this.default_hostname}/api"
}

output "storage_account_name" {
  description = "Storage account of the host, the deployment package, the journal and the dead letters."
  value       = azurerm_storage_account.this.name
}

output "dead_letter_container" {
  description = "Blob container Event Grid dead-letters Key Vault events to (docs/runbooks/dead-lettered-event.md)."
  value       = azurerm_storage_container.dead_letter.name
}

output "journal_table_name" {
  description = "The rotation journal's table (ROTATOR_JOURNAL_TABLE)."
  value       = azapi_resource.journal_table.name
}

output "application_insights_name" {
  description = "Application Insights component receiving the app's traces and logs (docs/observability.md)."
  value       = azurerm_application_insights.this.name
}

output "log_analytics_workspace_id" {
  description = "Log Analytics workspace behind Application Insights, storage logs and Event Grid delivery failures."
  value       = azurerm_log_analytics_workspace.this.id
}

output "system_topic_names" {
  description = "Event Grid system topic of each vault, by vault name."
  value       = { for k, t in azurerm_eventgrid_system_topic.vault : k => t.name }
}
