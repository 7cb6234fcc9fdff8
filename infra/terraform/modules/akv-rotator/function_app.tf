# The Function App on a Flex Consumption plan (FC1): Linux, Python, scale to zero, optional
# VNet integration. One app per Flex plan is all Azure allows.

resource "azurerm_service_plan" "this" {
  #checkov:skip=CKV_AZURE_225:Zone redundancy is opt-in (var.zone_redundant). On Flex Consumption it makes the platform keep at least two always-ready instances, billed around the clock, for each per-function scale group (Microsoft: reliability-functions); this app has four (HTTP, keyvault_events, sweeper, credential_health) for work that runs a few minutes a day. A lost zone delays rotations, it does not lose them: Event Grid retries for up to 24 hours and the sweeper resumes anything unfinished from the journal.
  #checkov:skip=CKV_AZURE_212:worker_count does not apply to a Flex Consumption (FC1) plan: instances are created per function on demand up to maximum_instance_count and scale to zero.
  name                   = local.plan_name
  resource_group_name    = var.resource_group_name
  location               = var.location
  os_type                = "Linux"
  sku_name               = "FC1"
  zone_balancing_enabled = var.zone_redundant
  tags                   = var.tags
}

resource "azurerm_function_app_flex_consumption" "this" {
  name                = var.function_app_name
  resource_group_name = var.resource_group_name
  location            = var.location
  service_plan_id     = azurerm_service_plan.this.id

  runtime_name           = "python"
  runtime_version        = var.python_version
  maximum_instance_count = var.maximum_instance_count
  instance_memory_in_mb  = var.instance_memory_in_mb

  # The deployment package lives in the module's storage account and is fetched with the
  # app's own identity (role: storage.tf); no connection string, no key.
  storage_container_type      = "blobContainer"
  storage_container_endpoint  = "${azurerm_storage_account.this.primary_blob_endpoint}${azurerm_storage_container.deployment.name}"
  storage_authentication_type = "SystemAssignedIdentity"

  # The one identity the app acts with: Key Vault (DefaultAzureCredential), host storage and
  # the journal (AzureWebJobsStorage__accountName), Key Vault references in app settings.
  identity {
    type = "SystemAssigned"
  }

  https_only = true
  # Event Grid pushes Key Vault events to the app over its public endpoint (push delivery
  # cannot target a private endpoint), so inbound public access stays on; HTTP routes need a
  # function key, and inbound_allowed_cidrs narrows who may connect at all.
  public_network_access_enabled = true
  # No publishing with basic credentials: `az functionapp deployment source config-zip` and
  # `func azure functionapp publish` authenticate with Microsoft Entra ID. Flex Consumption
  # has no FTP(S) endpoint at all (ftpsState is "not supported" on Flex).
  webdeploy_publish_basic_authentication_enabled = false
  client_certificate_enabled                     = false

  # Optional regional VNet integration (var.subnet_id, off by default).
  virtual_network_subnet_id = var.subnet_id

  app_settings = { for k, v in local.app_settings : k => v if !contains(local.provider_managed_settings, k) }

  site_config {
    application_insights_connection_string = local.app_settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    minimum_tls_version                    = "1.2"
    scm_minimum_tls_version                = "1.2"
    remote_debugging_enabled               = false

    ip_restriction_default_action = length(var.inbound_allowed_cidrs) > 0 ? "Deny" : "Allow"

    dynamic "ip_restriction" {
      for_each = { for i, cidr in var.inbound_allowed_cidrs : tostring(i) => cidr }
      content {
        name       = "operators-${ip_restriction.key}"
        action     = "Allow"
        priority   = 100 + tonumber(ip_restriction.key)
        ip_address = ip_restriction.value
      }
    }

    # Key Vault events come from Event Grid, whose addresses are the AzureEventGrid service
    # tag; without this rule a restricted app would refuse its own events.
    dynamic "ip_restriction" {
      for_each = length(var.inbound_allowed_cidrs) > 0 ? ["AzureEventGrid"] : []
      content {
        name        = "event-grid"
        action      = "Allow"
        priority    = 90
        service_tag = ip_restriction.value
      }
    }
  }

  tags = var.tags

  lifecycle {
    # Combinations rotation/settings.py would refuse on the first invocation, refused at plan
    # time instead.
    precondition {
      condition     = (var.targets_json != null ? 1 : 0) + (var.targets_secret_uri != null ? 1 : 0) + (var.targets_file != null ? 1 : 0) == 1
      error_message = "Declare the targets exactly one way: targets_json, targets_secret_uri or targets_file (README: Targets)."
    }
    precondition {
      condition     = var.targets_secret_vault_id == null || var.targets_secret_uri != null
      error_message = "targets_secret_vault_id only makes sense with targets_secret_uri."
    }
    precondition {
      condition     = var.validity_days >= max(30, var.sweep_window_days) + 1
      error_message = "validity_days must be at least max(30, sweep_window_days) + 1, or every near-expiry event and sweep would rotate the new version again."
    }
    precondition {
      condition     = var.lease_seconds >= 3 * max(var.keyvault_timeout_seconds, var.connect_timeout_seconds)
      error_message = "lease_seconds must be at least 3 x max(keyvault_timeout_seconds, connect_timeout_seconds), so that no step outlives its worker's lease."
    }
    precondition {
      condition     = alltrue([for s in var.kubeconfig_secrets : contains(keys(local.vaults), lower(split("/", s)[0]))])
      error_message = "Each kubeconfig secret must live in one of var.vaults (the app reads it with its own identity)."
    }
  }
}
