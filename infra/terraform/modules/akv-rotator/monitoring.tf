# Where the traces and logs go (docs/observability.md): a workspace-based Application
# Insights over one Log Analytics workspace, which also receives the storage account's logs
# and the system topics' delivery failures.

resource "azurerm_log_analytics_workspace" "this" {
  name                = local.log_analytics_workspace_name
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = var.tags
}

resource "azurerm_application_insights" "this" {
  name                = local.application_insights_name
  resource_group_name = var.resource_group_name
  location            = var.location
  application_type    = "other"
  workspace_id        = azurerm_log_analytics_workspace.this.id
  # Rotations are rare and each one matters; handlers/observability.py keeps every trace
  # (sampling_ratio 1.0), so the component must not sample them away either.
  sampling_percentage = 100
  # Local (connection-string) authentication stays on: the in-process exporter
  # (handlers/observability.py, configure_azure_monitor) is given the connection string only.
  # Turning it off needs credential= there, APPLICATIONINSIGHTS_AUTHENTICATION_STRING and the
  # role "Monitoring Metrics Publisher" for the app.
  local_authentication_disabled = false
  tags                          = var.tags
}

# Storage logs (reads, writes, deletes of the host's blobs, the journal's entities, the
# dead letters) into the workspace. Diagnostic settings go through Azure Resource Manager,
# unlike classic Storage Analytics logging, which needs the account key.
resource "azurerm_monitor_diagnostic_setting" "storage_services" {
  for_each = toset(["blobServices", "queueServices", "tableServices"])

  name                       = "to-${local.log_analytics_workspace_name}"
  target_resource_id         = "${azurerm_storage_account.this.id}/${each.key}/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category_group = "allLogs"
  }
}
