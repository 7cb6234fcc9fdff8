# The smallest real deployment of akv-rotator: a resource group and the module, for vaults
# that already exist. docs/deploy.md walks through it from an empty subscription.

resource "azurerm_resource_group" "this" {
  name     = var.resource_group_name
  location = var.location
  tags     = var.tags
}

module "akv_rotator" {
  source = "../../modules/akv-rotator"

  resource_group_name  = azurerm_resource_group.this.name
  location             = azurerm_resource_group.this.location
  name                 = var.name
  function_app_name    = var.function_app_name
  storage_account_name = var.storage_account_name
  tags                 = var.tags

  vaults = var.vaults

  # Exactly one of the three (README: Targets).
  targets_json            = var.targets_json
  targets_secret_uri      = var.targets_secret_uri
  targets_secret_vault_id = var.targets_secret_vault_id

  kubeconfig_secrets = var.kubeconfig_secrets

  # First apply: false; publish the package; then true (docs/deploy.md).
  event_subscriptions_enabled = var.event_subscriptions_enabled

  dead_letter_reader_principal_ids = var.dead_letter_reader_principal_ids
  alert_action_group_id            = var.alert_action_group_id
  inbound_allowed_cidrs            = var.inbound_allowed_cidrs
  subnet_id                        = var.subnet_id
}
