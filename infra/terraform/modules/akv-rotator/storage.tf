# One storage account: the Functions host's storage (AzureWebJobsStorage), the deployment
# package, the rotation journal and Event Grid's dead letters. Shared Key is off: every
# caller (the host, the journal, Event Grid, the deployer) uses Microsoft Entra ID.

resource "azurerm_storage_account" "this" {
  #checkov:skip=CKV_AZURE_59:Public network access must stay on. Without VNet integration the Flex app reaches its host storage and journal from outbound addresses that are not fixed; with it, Flex's delegated subnet cannot carry service endpoints (Microsoft: the subnet "can't already be used for other purposes, such as with private endpoints or service endpoints"), so locking the account down takes private endpoints and private DNS for blob and table, a per-network change (docs/deploy.md). Shared Key is off: every request is authorised with Microsoft Entra ID and RBAC.
  #checkov:skip=CKV2_AZURE_33:No private endpoint by default, for the reason given for CKV_AZURE_59.
  #checkov:skip=CKV2_AZURE_1:Encrypted at rest with Microsoft-managed keys plus infrastructure encryption (double encryption). A customer-managed key would add a Key Vault key and an identity to keep alive for data that holds no secret values: the journal keeps ids, versions and timings only (docs/security.md), dead letters carry secret names and versions, never values.
  #checkov:skip=CKV_AZURE_33:Classic Storage Analytics queue logging is configured through the queue data plane with the account key, which this account refuses. The app uses no queue (timer, HTTP and Event Grid triggers only), and blob, queue and table logs go to Log Analytics through diagnostic settings (monitoring.tf).
  name                     = var.storage_account_name
  resource_group_name      = var.resource_group_name
  location                 = var.location
  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = var.storage_replication_type
  access_tier              = "Hot"

  https_traffic_only_enabled        = true
  min_tls_version                   = "TLS1_2"
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  allow_nested_items_to_be_public   = false
  infrastructure_encryption_enabled = true
  local_user_enabled                = false
  sftp_enabled                      = false
  cross_tenant_replication_enabled  = false
  allowed_copy_scope                = "AAD"
  public_network_access_enabled     = true

  blob_properties {
    delete_retention_policy {
      days = var.blob_soft_delete_days
    }
    container_delete_retention_policy {
      days = var.blob_soft_delete_days
    }
  }

  tags = var.tags
}

# Flex Consumption runs the package it finds here (functionAppConfig.deployment). The
# storage_account_id form goes through Azure Resource Manager, so it works with Shared Key off.
resource "azurerm_storage_container" "deployment" {
  #checkov:skip=CKV2_AZURE_21:Blob read logging is on through a diagnostic setting on blobServices/default (monitoring.tf); the check only recognises azurerm_log_analytics_storage_insights, which needs the storage account key this account does not allow.
  name                  = var.deployment_container_name
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

# Event Grid writes events it could not deliver here (keyvault_events.tf), one blob per event
# batch; docs/runbooks/dead-lettered-event.md reads them.
resource "azurerm_storage_container" "dead_letter" {
  #checkov:skip=CKV2_AZURE_21:Blob read logging is on through a diagnostic setting on blobServices/default (monitoring.tf); the check only recognises azurerm_log_analytics_storage_insights, which needs the storage account key this account does not allow.
  name                  = var.dead_letter_container_name
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

# The rotation journal's table (ROTATOR_JOURNAL_TABLE). Created through Azure Resource
# Manager with azapi because azurerm_storage_table always reads and sets the table's ACL with
# Shared Key (its documentation says so; hashicorp/terraform-provider-azurerm#32249), in
# every 4.x release, with storage_account_name or with the storage_account_id form added in
# 4.77.0 alike, and this account refuses Shared Key. The journal also creates the table on
# first use if it is missing (rotation/journal/tables.py), which its role allows.
resource "azapi_resource" "journal_table" {
  type      = "Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01"
  name      = var.journal_table_name
  parent_id = "${azurerm_storage_account.this.id}/tableServices/default"
  body      = {}
}

# The sweeper's work queue (ROTATOR_QUEUE, rotation/queue.py) and the poison queue the host
# moves a message to after maxDequeueCount deliveries (host.json). Through ARM for the same
# reason as the table: this account refuses Shared Key.
resource "azapi_resource" "work_queue" {
  for_each  = toset([var.queue_name, "${var.queue_name}-poison"])
  type      = "Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01"
  name      = each.value
  parent_id = "${azurerm_storage_account.this.id}/queueServices/default"
  body      = {}
}

# --- The app's roles on this storage account (and nowhere else in storage) -----------------

# The Functions host with AzureWebJobsStorage__accountName: function keys (the default key
# store is blob), the host ID lease, and the timer triggers' singleton locks and schedule
# monitor (sweeper and credential_health in function_app.py, use_monitor=True) are blobs in
# containers the host creates itself, hence Owner rather than Contributor (Microsoft: "The
# Storage Blob Data Owner role covers the basic needs of Functions host storage"; HTTP and
# Event Grid triggers add nothing). It also covers Flex Consumption's deployment container
# with storage_authentication_type = SystemAssignedIdentity, which needs Storage Blob Data
# Contributor.
resource "azurerm_role_assignment" "app_storage_blob_data_owner" {
  scope                            = azurerm_storage_account.this.id
  role_definition_name             = "Storage Blob Data Owner"
  principal_id                     = azurerm_function_app_flex_consumption.this.identity[0].principal_id
  principal_type                   = "ServicePrincipal"
  skip_service_principal_aad_check = true
  description                      = "akv-rotator: Functions host storage and the Flex deployment package"
}

# The rotation journal (ROTATOR_JOURNAL=table, rotation/journal/tables.py): create_table on
# first use, query_entities, submit_transaction with etag conditions. The same role lets the
# host persist its diagnostic events to table storage.
resource "azurerm_role_assignment" "app_storage_table_data_contributor" {
  scope                            = azurerm_storage_account.this.id
  role_definition_name             = "Storage Table Data Contributor"
  principal_id                     = azurerm_function_app_flex_consumption.this.identity[0].principal_id
  principal_type                   = "ServicePrincipal"
  skip_service_principal_aad_check = true
  description                      = "akv-rotator: the rotation journal table"
}

# The sweeper's work queue: rotation/queue.py sends messages; the host's queue trigger
# (queued_work, poisoned_work in function_app.py) reads, updates and deletes them and moves
# poison messages (Microsoft: a queue trigger needs Storage Queue Data Reader and Message
# Processor, output or poison handling Message Sender; Contributor is the one role that
# covers all of them on this account's queues).
resource "azurerm_role_assignment" "app_storage_queue_data_contributor" {
  scope                            = azurerm_storage_account.this.id
  role_definition_name             = "Storage Queue Data Contributor"
  principal_id                     = azurerm_function_app_flex_consumption.this.identity[0].principal_id
  principal_type                   = "ServicePrincipal"
  skip_service_principal_aad_check = true
  description                      = "akv-rotator: the sweeper's work queue"
}

# People who work the dead-lettered-event runbook read the dead letters, and only those.
resource "azurerm_role_assignment" "dead_letter_readers" {
  for_each             = toset(var.dead_letter_reader_principal_ids)
  scope                = azurerm_storage_container.dead_letter.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = each.value
  description          = "akv-rotator: read dead-lettered Key Vault events (docs/runbooks/dead-lettered-event.md)"
}
