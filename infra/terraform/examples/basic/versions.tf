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

provider "azurerm" {
  subscription_id = var.subscription_id

  # The module's storage account refuses Shared Key. Whatever the provider still does on the
  # storage data plane goes through Microsoft Entra ID...
  storage_use_azuread = true

  features {
    storage {
      # ...and azurerm_storage_account skips its queue_properties / static_website data-plane
      # reads, which this module never configures (azurerm "features block" guide).
      data_plane_available = false
    }
  }
}

provider "azapi" {
  subscription_id = var.subscription_id
}
