variable "subscription_id" {
  type        = string
  description = "Subscription to deploy into (azurerm 4.x needs it explicitly, or ARM_SUBSCRIPTION_ID)."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group to create for akv-rotator."
}

variable "location" {
  type        = string
  description = "Region offering Flex Consumption (`az functionapp list-flexconsumption-locations`)."
}

variable "name" {
  type        = string
  description = "Base name of the plan, Log Analytics, Application Insights and system topics."
}

variable "function_app_name" {
  type        = string
  description = "Globally unique Function App name (at most 32 characters)."
}

variable "storage_account_name" {
  type        = string
  description = "Globally unique storage account name (3-24 lower-case letters and digits)."
}

variable "tags" {
  type        = map(string)
  description = "Tags for everything created."
  default     = {}
}

variable "vaults" {
  type = list(object({
    name              = string
    resource_id       = string
    location          = optional(string)
    system_topic_name = optional(string)
  }))
  description = "Vaults akv-rotator may act on (see the module's variable)."
}

variable "targets_json" {
  type        = string
  description = "The operator's targets as JSON (or use targets_secret_uri)."
  default     = null
}

variable "targets_secret_uri" {
  type        = string
  description = "Key Vault secret holding the targets JSON; ROTATOR_TARGETS becomes a Key Vault reference."
  default     = null
}

variable "targets_secret_vault_id" {
  type        = string
  description = "Resource ID of the vault holding targets_secret_uri, when it is not one of var.vaults."
  default     = null
}

variable "kubeconfig_secrets" {
  type        = list(string)
  description = "vault/secret-name of each cluster's kubeconfig, for propagation; empty for none."
  default     = []
}

variable "event_subscriptions_enabled" {
  type        = bool
  description = "Create the Event Grid subscriptions (false on the very first apply, before the package is published)."
  default     = true
}

variable "dead_letter_reader_principal_ids" {
  type        = list(string)
  description = "Object IDs allowed to read dead-lettered events (e.g. the on-call group)."
  default     = []
}

variable "alert_action_group_id" {
  type        = string
  description = "Action group notified of dead-lettered events; null for none."
  default     = null
}

variable "inbound_allowed_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to call the HTTP routes (Event Grid is always allowed); empty for no restriction."
  default     = []
}

variable "subnet_id" {
  type        = string
  description = "Optional subnet (delegated to Microsoft.App/environments) for VNet integration."
  default     = null
}
