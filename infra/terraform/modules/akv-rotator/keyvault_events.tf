# Per vault in var.vaults: the app's Key Vault role (that vault only), the vault's Event Grid
# system topic, its subscription to the keyvault_events function, dead-lettering with the
# topic's own identity, and an alert when anything is dead-lettered.

data "azurerm_client_config" "current" {}

locals {
  # The secret name in targets_secret_uri, for a role scoped to that one secret.
  targets_secret_name = var.targets_secret_uri == null ? null : regex("/secrets/([0-9A-Za-z-]+)", var.targets_secret_uri)[0]
}

# Read, write and list the secrets of this vault: rotation/keyvault.py gets the current
# version and its tags, lists versions (sweeper, orphan pending versions), sets new versions
# and the "-rotator-pending" companion, and updates version attributes (disabling orphans).
# "Key Vault Secrets Officer" is the built-in role that grants set; it grants every secret
# data action (Microsoft.KeyVault/vaults/secrets/*), delete and purge included, which the
# code never calls. Scoped to the vault, nothing wider. The vault must use the Azure RBAC
# permission model, or this assignment has no effect.
resource "azurerm_role_assignment" "keyvault_secrets_officer" {
  for_each                         = local.vaults
  scope                            = each.value.resource_id
  role_definition_name             = "Key Vault Secrets Officer"
  principal_id                     = azurerm_function_app_flex_consumption.this.identity[0].principal_id
  principal_type                   = "ServicePrincipal"
  skip_service_principal_aad_check = true
  description                      = "akv-rotator: rotate the opted-in secrets of ${each.key}"
}

# App Service resolves the ROTATOR_TARGETS Key Vault reference with the app's identity. Only
# needed when that secret lives outside var.vaults; scoped to the one secret.
resource "azurerm_role_assignment" "targets_secret_user" {
  count                            = var.targets_secret_vault_id != null && var.targets_secret_uri != null ? 1 : 0
  scope                            = "${var.targets_secret_vault_id}/secrets/${local.targets_secret_name}"
  role_definition_name             = "Key Vault Secrets User"
  principal_id                     = azurerm_function_app_flex_consumption.this.identity[0].principal_id
  principal_type                   = "ServicePrincipal"
  skip_service_principal_aad_check = true
  description                      = "akv-rotator: resolve the ROTATOR_TARGETS Key Vault reference"
}

# rotation/publishing.py publishes rotation CloudEvents with the app's identity.
resource "azurerm_role_assignment" "rotation_events_sender" {
  count                            = var.rotation_events == null ? 0 : 1
  scope                            = var.rotation_events.resource_id
  role_definition_name             = "EventGrid Data Sender"
  principal_id                     = azurerm_function_app_flex_consumption.this.identity[0].principal_id
  principal_type                   = "ServicePrincipal"
  skip_service_principal_aad_check = true
  description                      = "akv-rotator: publish rotation events"
}

# One system topic per vault: Azure allows one per source resource, and only in the source's
# own subscription (here: var.resource_group_name, in the deployment's subscription). Its
# system-assigned identity writes dead letters: with Shared Key off on the storage account,
# dead-lettering must authenticate with Microsoft Entra ID ("Event delivery with a managed
# identity").
resource "azurerm_eventgrid_system_topic" "vault" {
  for_each            = local.vaults
  name                = each.value.system_topic_name
  resource_group_name = var.resource_group_name
  location            = each.value.location
  source_resource_id  = each.value.resource_id
  topic_type          = "Microsoft.KeyVault.vaults"

  identity {
    type = "SystemAssigned"
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = lower(split("/", each.value.resource_id)[2]) == lower(data.azurerm_client_config.current.subscription_id)
      error_message = "Vault ${each.key} is in another subscription than this deployment: Event Grid creates a system topic only in its source's subscription. Deploy the module with that subscription, or subscribe that vault separately."
    }
  }
}

# The topic's identity may write to the dead-letter container and nothing else.
resource "azurerm_role_assignment" "topic_dead_letter_writer" {
  for_each                         = local.vaults
  scope                            = azurerm_storage_container.dead_letter.id
  role_definition_name             = "Storage Blob Data Contributor"
  principal_id                     = azurerm_eventgrid_system_topic.vault[each.key].identity[0].principal_id
  principal_type                   = "ServicePrincipal"
  skip_service_principal_aad_check = true
  description                      = "Event Grid system topic ${each.value.system_topic_name}: write dead-lettered events"
}

# Key Vault events to the keyvault_events function (function_app.py). Event types: the three
# rotation/events.py acts on (HANDLED_KINDS); anything else would only be acknowledged and
# ignored. Azure checks that the function exists when the subscription is created, hence
# event_subscriptions_enabled for the first apply (docs/deploy.md).
resource "azurerm_eventgrid_system_topic_event_subscription" "keyvault_events" {
  for_each            = var.event_subscriptions_enabled ? local.vaults : {}
  name                = "akv-rotator"
  system_topic        = azurerm_eventgrid_system_topic.vault[each.key].name
  resource_group_name = var.resource_group_name

  event_delivery_schema = "EventGridSchema"
  included_event_types = [
    "Microsoft.KeyVault.SecretNearExpiry",
    "Microsoft.KeyVault.SecretExpired",
    "Microsoft.KeyVault.SecretNewVersionCreated",
  ]

  # Event Grid fetches the function's key itself and keeps it current.
  azure_function_endpoint {
    function_id                       = "${azurerm_function_app_flex_consumption.this.id}/functions/keyvault_events"
    max_events_per_batch              = 1
    preferred_batch_size_in_kilobytes = 64
  }

  # The subject of a Key Vault event is the secret's name (case-insensitive, like the names).
  dynamic "subject_filter" {
    for_each = var.subject_begins_with == "" ? [] : [var.subject_begins_with]
    content {
      subject_begins_with = subject_filter.value
      case_sensitive      = false
    }
  }

  retry_policy {
    max_delivery_attempts = var.max_delivery_attempts
    event_time_to_live    = var.event_time_to_live_minutes
  }

  dead_letter_identity {
    type = "SystemAssigned"
  }

  storage_blob_dead_letter_destination {
    storage_account_id          = azurerm_storage_account.this.id
    storage_blob_container_name = azurerm_storage_container.dead_letter.name
  }

  labels = ["akv-rotator"]

  depends_on = [
    azurerm_role_assignment.topic_dead_letter_writer,
  ]
}

# Nothing in akv-rotator watches the dead-letter container (runbook: Limits); this does.
resource "azurerm_monitor_metric_alert" "dead_lettered" {
  for_each            = local.vaults
  name                = "akv-rotator-dead-lettered-${each.key}"
  resource_group_name = var.resource_group_name
  scopes              = [azurerm_eventgrid_system_topic.vault[each.key].id]
  description         = "A Key Vault event of ${each.key} was dead-lettered: docs/runbooks/dead-lettered-event.md"
  severity            = 2
  frequency           = "PT5M"
  window_size         = "PT15M"

  criteria {
    metric_namespace = "Microsoft.EventGrid/systemTopics"
    metric_name      = "DeadLetteredCount"
    aggregation      = "Total"
    operator         = "GreaterThan"
    threshold        = 0
  }

  dynamic "action" {
    for_each = var.alert_action_group_id == null ? [] : [var.alert_action_group_id]
    content {
      action_group_id = action.value
    }
  }

  tags = var.tags
}

# Why a delivery failed (AegDeliveryFailureLogs), next to the app's own traces.
resource "azurerm_monitor_diagnostic_setting" "system_topic" {
  for_each                   = local.vaults
  name                       = "to-${local.log_analytics_workspace_name}"
  target_resource_id         = azurerm_eventgrid_system_topic.vault[each.key].id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category = "DeliveryFailures"
  }
}
