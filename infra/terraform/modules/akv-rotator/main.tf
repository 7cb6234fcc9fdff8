# akv-rotator on Azure Functions Flex Consumption.
#
#   main.tf             names, and the app settings (local.app_settings: the one place they live)
#   storage.tf          storage account, containers, journal table, the app's storage roles
#   monitoring.tf       Log Analytics, Application Insights, storage diagnostic settings
#   function_app.tf     Flex Consumption plan and app
#   keyvault_events.tf  per vault: Key Vault role, system topic, subscription, dead-letter alert
#
# Never applied against a real subscription from this repository (no Azure account was
# available while it was written): docs/deploy.md says what that means for a first apply.

locals {
  vaults = { for v in var.vaults : lower(v.name) => {
    name              = lower(v.name)
    resource_id       = v.resource_id
    location          = coalesce(v.location, var.location)
    system_topic_name = coalesce(v.system_topic_name, "evgt-${lower(v.name)}")
  } }

  plan_name                    = "plan-${var.name}"
  log_analytics_workspace_name = "log-${var.name}"
  application_insights_name    = "appi-${var.name}"

  # Key Vault reference for ROTATOR_TARGETS; resolved by App Service with the app's
  # system-assigned identity, which needs get on that secret (keyvault_events.tf).
  targets_reference = var.targets_secret_uri == null ? null : "@Microsoft.KeyVault(SecretUri=${var.targets_secret_uri})"

  # Every setting the code reads (rotation/settings.py, handlers/, the journal), with the
  # README's defaults unless the operator chose otherwise. Keys are literal strings: the
  # wiring test reads this map with python-hcl2.
  #
  # Local only, never in Azure: ROTATOR_KEYVAULT_STATIC_TOKEN, ROTATOR_KEYVAULT_AUTH=static-token,
  # ROTATOR_KEYVAULT_CA_BUNDLE, ROTATOR_EVENTS_CA_BUNDLE. They exist for the local twins on
  # loopback (a fixed bearer token, the twins' own CA); in Azure the managed identity and the
  # system trust store are used, and the code refuses a static token for a remote vault.
  #
  # Left out because Flex Consumption sets or replaces them ("Flex Consumption plan
  # deprecations", learn.microsoft.com/azure/azure-functions/functions-app-settings):
  #   FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_WORKER_RUNTIME_VERSION  -> runtime_name/runtime_version
  #   FUNCTIONS_EXTENSION_VERSION                                 -> set by the platform
  #   WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENTAZUREFILECONNECTIONSTRING,
  #   WEBSITE_CONTENTSHARE                                        -> the deployment container
  #   SCM_DO_BUILD_DURING_DEPLOYMENT, ENABLE_ORYX_BUILD           -> `--build-remote` when publishing
  #   WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT                   -> maximum_instance_count
  #   WEBSITE_VNET_ROUTE_ALL, WEBSITE_CONTENTOVERVNET, WEBSITE_DNS_SERVER -> not used by Flex
  #   FUNCTIONS_WORKER_PROCESS_COUNT                              -> not valid on Flex
  # Also left out: AzureWebJobsFeatureFlags=EnableWorkerIndexing (local.settings.example.json):
  # worker indexing of the Python v2 model is the host's default in Azure, and the flag is
  # no longer a documented one.
  app_settings = {
    # Host storage through the managed identity: the account name only, no key, no connection
    # string (Functions: "Connecting to host storage with an identity"). The journal reads
    # the same setting (ROTATOR_JOURNAL=table).
    "AzureWebJobsStorage__accountName" = azurerm_storage_account.this.name

    # Deliberately empty. azurerm_function_app_flex_consumption (4.x and 5.x) always writes
    # AzureWebJobsStorage as "DefaultEndpointsProtocol=https;AccountName=<name>;AccountKey=;..."
    # even with storage_authentication_type = "SystemAssignedIdentity"; a non-empty value
    # wins over __accountName and carries an empty key. An explicit "" replaces it, as
    # Microsoft's own Flex Consumption Terraform sample does
    # (Azure-Samples/azure-functions-flex-consumption-samples, IaC/terraformazurerm;
    # hashicorp/terraform-provider-azurerm#29693). The provider does not read the key back,
    # so every plan shows this one setting being added again: that is expected.
    "AzureWebJobsStorage" = ""

    # Passed to the app through site_config.application_insights_connection_string
    # (function_app.tf): the provider moves this key there on read, so putting it in
    # app_settings as well would show a change on every plan.
    "APPLICATIONINSIGHTS_CONNECTION_STRING" = azurerm_application_insights.this.connection_string

    # ADR 0006: the app's own azure-functions (>= 1.25) decodes events, not the worker's.
    "PYTHON_ISOLATE_WORKER_DEPENDENCIES" = "1"

    # ADR 0007: four invocations at a time per instance (the Python worker's thread pool runs
    # every synchronous function; unset, its size would follow the instance's CPU count).
    "PYTHON_THREADPOOL_THREAD_COUNT" = "4"

    "ROTATOR_VAULTS"                  = join(",", [for v in local.vaults : "${v.name}=https://${v.name}.${var.key_vault_dns_suffix}"])
    "ROTATOR_TARGETS"                 = local.targets_reference != null ? local.targets_reference : (var.targets_json == null ? "" : var.targets_json)
    "ROTATOR_TARGETS_FILE"            = var.targets_file == null ? "" : var.targets_file
    "ROTATOR_TRUST_APP_SERVICE_AUTH"  = var.trust_app_service_auth ? "true" : "false"
    "ROTATOR_VALIDITY_DAYS"           = tostring(var.validity_days)
    "ROTATOR_GRACE_HOURS"             = tostring(var.grace_hours)
    "ROTATOR_JOURNAL"                 = "table"
    "ROTATOR_JOURNAL_TABLE"           = var.journal_table_name
    "ROTATOR_SWEEP_SCHEDULE"          = var.sweep_schedule
    "ROTATOR_HEALTH_SCHEDULE"         = var.health_schedule
    "ROTATOR_SWEEP_WINDOW_DAYS"       = tostring(var.sweep_window_days)
    "ROTATOR_QUEUE"                   = var.queue_name
    "ROTATOR_LEASE_SECONDS"           = tostring(var.lease_seconds)
    "ROTATOR_MAX_ATTEMPTS"            = tostring(var.max_attempts)
    "ROTATOR_ATTEMPT_BACKOFF_SECONDS" = tostring(var.attempt_backoff_seconds)
    # DefaultAzureCredential: the system-assigned managed identity in Azure.
    "ROTATOR_KEYVAULT_AUTH"             = "default"
    "ROTATOR_RETRY_ATTEMPTS"            = tostring(var.retry_attempts)
    "ROTATOR_RETRY_INITIAL_SECONDS"     = tostring(var.retry_initial_seconds)
    "ROTATOR_RETRY_MAX_SECONDS"         = tostring(var.retry_max_seconds)
    "ROTATOR_CONNECT_TIMEOUT_SECONDS"   = tostring(var.connect_timeout_seconds)
    "ROTATOR_KEYVAULT_TIMEOUT_SECONDS"  = tostring(var.keyvault_timeout_seconds)
    "ROTATOR_LOG_LEVEL"                 = var.log_level
    "ROTATOR_EVENTS_ENDPOINT"           = var.rotation_events == null ? "" : var.rotation_events.endpoint
    "ROTATOR_EVENTS_TOPIC"              = var.rotation_events == null ? "" : (var.rotation_events.namespace_topic == null ? "" : var.rotation_events.namespace_topic)
    "ROTATOR_KUBECONFIG_SECRET"         = join(",", var.kubeconfig_secrets)
    "ROTATOR_PROPAGATION_POLL_SECONDS"  = tostring(var.propagation_poll_seconds)
    "ROTATOR_PROPAGATION_WATCH_MINUTES" = tostring(var.propagation_watch_minutes)
  }

  # Settings the provider manages through dedicated arguments rather than app_settings.
  provider_managed_settings = ["APPLICATIONINSIGHTS_CONNECTION_STRING"]
}
