# azurerm 4.40.0 is the oldest 4.x release with everything this module uses:
#   - azurerm_function_app_flex_consumption            (new in 4.21.0)
#   - its https_only argument                           (4.31.0; accepted but ignored before)
#   - its maximum_instance_count updates                (fixed in 4.39.0)
#   - azurerm_eventgrid_system_topic.source_resource_id (4.40.0; source_arm_resource_id is
#     deprecated and gone in 5.0)
# (CHANGELOG-v4.md of hashicorp/terraform-provider-azurerm.)
#
# azapi creates the journal table through Azure Resource Manager: azurerm_storage_table
# (every 4.x release, and 5.0) reads and writes the table's ACL with Shared Key only, which
# this module turns off on the storage account (see storage.tf).
terraform {
  required_version = ">= 1.6.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.40"
    }
    azapi = {
      source  = "Azure/azapi"
      version = "~> 2.0"
    }
  }
}
