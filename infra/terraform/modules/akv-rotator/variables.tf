# ---------------------------------------------------------------------------------------------
# Where and what to call things
# ---------------------------------------------------------------------------------------------

variable "resource_group_name" {
  type        = string
  description = "An existing resource group for everything this module creates (the vaults may live elsewhere)."
}

variable "location" {
  type        = string
  description = "Azure region of the Function App, its plan, storage and monitoring. Must offer Flex Consumption: `az functionapp list-flexconsumption-locations`."
}

variable "name" {
  type        = string
  description = "Short base name for the plan, Log Analytics, Application Insights and system topics (e.g. `akvrot-prod`)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "name must be 3-40 lower-case letters, digits and '-', not starting or ending with '-'."
  }
}

variable "function_app_name" {
  type        = string
  description = "Globally unique Function App name; also its host name (`<name>.azurewebsites.net`). At most 32 characters, so the Functions host ID is not truncated into a collision."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$", var.function_app_name)) && !strcontains(var.function_app_name, "--")
    error_message = "function_app_name must be 2-32 lower-case letters, digits and single '-', not starting or ending with '-'."
  }
}

variable "storage_account_name" {
  type        = string
  description = "Globally unique name of the storage account for the Functions host, the deployment package, the journal table and dead-lettered events."

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name must be 3-24 lower-case letters and digits."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource this module creates."
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# The vaults and their events
# ---------------------------------------------------------------------------------------------

variable "vaults" {
  type = list(object({
    name        = string
    resource_id = string
    # The vault's region: a Key Vault system topic lives in its source's region.
    # Default: var.location.
    location = optional(string)
    # Azure allows one system topic per source resource. If the vault already has one,
    # give its name here and `terraform import` it (docs/deploy.md); default
    # "evgt-<vault name>".
    system_topic_name = optional(string)
  }))
  description = "Vaults akv-rotator may act on (ROTATOR_VAULTS). Each gets the role \"Key Vault Secrets Officer\" for the app's identity (vault scope only), an Event Grid system topic and a subscription to the keyvault_events function. The vaults must use the Azure RBAC permission model."

  validation {
    condition     = length(var.vaults) > 0
    error_message = "vaults must name at least one vault."
  }
  validation {
    # rotation/settings.py: 3-24 letters, digits and single '-', first and last alphanumeric.
    condition = alltrue([for v in var.vaults :
      can(regex("^[0-9A-Za-z][0-9A-Za-z-]{1,22}[0-9A-Za-z]$", v.name)) && !strcontains(v.name, "--")
    ])
    error_message = "Each vault name must be a Key Vault name: 3-24 letters, digits and single '-', starting and ending with a letter or digit."
  }
  validation {
    condition = alltrue([for v in var.vaults :
      can(regex("(?i)^/subscriptions/[0-9a-f-]{36}/resourceGroups/[^/]+/providers/Microsoft\\.KeyVault/vaults/([^/]+)$", v.resource_id))
      && lower(element(split("/", v.resource_id), 8)) == lower(v.name)
    ])
    error_message = "Each vault resource_id must be /subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>, ending in that vault's name."
  }
  validation {
    condition     = length(distinct([for v in var.vaults : lower(v.name)])) == length(var.vaults)
    error_message = "Vault names must be unique (Key Vault names are case-insensitive)."
  }
}

variable "key_vault_dns_suffix" {
  type        = string
  description = "DNS suffix of vault URLs in ROTATOR_VAULTS (`vault.azure.net` in the public cloud, `vault.azure.cn`, `vault.usgovcloudapi.net`)."
  default     = "vault.azure.net"
}

variable "event_subscriptions_enabled" {
  type        = bool
  description = "Create the Event Grid subscriptions. Azure refuses a subscription whose function does not exist yet, so the very first apply runs with false, then the package is published, then apply again with true (docs/deploy.md)."
  default     = true
}

variable "subject_begins_with" {
  type        = string
  description = "Only deliver events whose subject (the secret name) starts with this. Empty: no subject filter."
  default     = ""
}

variable "max_delivery_attempts" {
  type        = number
  description = "Event Grid delivery attempts per event before it is dead-lettered (1-30)."
  default     = 30

  validation {
    condition     = var.max_delivery_attempts >= 1 && var.max_delivery_attempts <= 30 && floor(var.max_delivery_attempts) == var.max_delivery_attempts
    error_message = "max_delivery_attempts must be a whole number from 1 to 30."
  }
}

variable "event_time_to_live_minutes" {
  type        = number
  description = "How long Event Grid keeps retrying an event before it is dead-lettered, in minutes (1-1440)."
  default     = 1440

  validation {
    condition     = var.event_time_to_live_minutes >= 1 && var.event_time_to_live_minutes <= 1440 && floor(var.event_time_to_live_minutes) == var.event_time_to_live_minutes
    error_message = "event_time_to_live_minutes must be a whole number from 1 to 1440."
  }
}

variable "dead_letter_container_name" {
  type        = string
  description = "Blob container Event Grid writes undeliverable events to (docs/runbooks/dead-lettered-event.md)."
  default     = "deadletter"

  validation {
    condition     = can(regex("^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$", var.dead_letter_container_name))
    error_message = "dead_letter_container_name must be a blob container name: 3-63 lower-case letters, digits and single '-'."
  }
}

variable "dead_letter_reader_principal_ids" {
  type        = list(string)
  description = "Object IDs (users or groups, e.g. the on-call group) given \"Storage Blob Data Reader\" on the dead-letter container only, as the dead-lettered-event runbook needs."
  default     = []
}

variable "alert_action_group_id" {
  type        = string
  description = "Action group notified when a system topic dead-letters an event (metric DeadLetteredCount > 0). Null: the alert still fires in Azure Monitor, nobody is notified."
  default     = null
}

# ---------------------------------------------------------------------------------------------
# The operator's targets (README: Targets) - exactly one of the three
# ---------------------------------------------------------------------------------------------

variable "targets_json" {
  type        = string
  description = "The operator's targets as JSON, set as ROTATOR_TARGETS. It holds no credentials (admin logins are Key Vault references inside it), but prefer targets_secret_uri so the declaration is versioned and access-controlled in Key Vault."
  default     = null

  validation {
    condition     = var.targets_json == null || can(jsondecode(var.targets_json))
    error_message = "targets_json must be valid JSON."
  }
}

variable "targets_secret_uri" {
  type        = string
  description = "Key Vault secret holding the targets JSON; ROTATOR_TARGETS becomes the Key Vault reference @Microsoft.KeyVault(SecretUri=...). Versionless (https://<vault>.vault.azure.net/secrets/<name>) follows new versions within a day, or at once on restart."
  default     = null

  validation {
    condition     = var.targets_secret_uri == null || can(regex("(?i)^https://[a-z0-9-]+\\.vault\\.[a-z0-9.]+/secrets/[0-9A-Za-z-]{1,127}(/[0-9a-f]{32})?/?$", var.targets_secret_uri))
    error_message = "targets_secret_uri must be https://<vault>.vault.<suffix>/secrets/<name>[/<version>]."
  }
}

variable "targets_secret_vault_id" {
  type        = string
  description = "Resource ID of the vault holding targets_secret_uri, when that vault is not one of var.vaults: the app's identity then gets \"Key Vault Secrets User\" on that one secret only."
  default     = null

  validation {
    condition     = var.targets_secret_vault_id == null || can(regex("(?i)^/subscriptions/[0-9a-f-]{36}/resourceGroups/[^/]+/providers/Microsoft\\.KeyVault/vaults/[^/]+$", var.targets_secret_vault_id))
    error_message = "targets_secret_vault_id must be a Key Vault resource ID."
  }
}

variable "targets_file" {
  type        = string
  description = "Path of a targets JSON file shipped inside the package (ROTATOR_TARGETS_FILE), instead of ROTATOR_TARGETS."
  default     = null
}

# ---------------------------------------------------------------------------------------------
# ROTATOR_* settings (README: Configuration); defaults are the README's
# ---------------------------------------------------------------------------------------------

variable "validity_days" {
  type        = number
  description = "ROTATOR_VALIDITY_DAYS: lifetime of new versions without a rotator-validity-days tag. Must exceed max(30, sweep_window_days) + 1."
  default     = 90

  validation {
    condition     = var.validity_days >= 1 && var.validity_days <= 3650 && floor(var.validity_days) == var.validity_days
    error_message = "validity_days must be a whole number from 1 to 3650."
  }
}

variable "grace_hours" {
  type        = number
  description = "ROTATOR_GRACE_HOURS: how long a retired-later credential keeps working (0-720)."
  default     = 24

  validation {
    condition     = var.grace_hours >= 0 && var.grace_hours <= 720
    error_message = "grace_hours must be from 0 to 720."
  }
}

variable "journal_table_name" {
  type        = string
  description = "ROTATOR_JOURNAL_TABLE: the journal's table in the module's storage account."
  default     = "rotations"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9]{2,62}$", var.journal_table_name))
    error_message = "journal_table_name must be 3-63 letters and digits, starting with a letter."
  }
}

variable "queue_name" {
  type        = string
  description = "ROTATOR_QUEUE: the sweeper's work queue in the module's storage account (the host adds -poison)."
  default     = "rotations"

  validation {
    condition     = can(regex("^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,55}$", var.queue_name))
    error_message = "queue_name must be 3-56 lower-case letters, digits and single hyphens."
  }
}

variable "sweep_schedule" {
  type        = string
  description = "ROTATOR_SWEEP_SCHEDULE: six-field NCRONTAB schedule of the sweeper."
  default     = "0 */15 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.sweep_schedule))) == 6
    error_message = "sweep_schedule must be a six-field NCRONTAB expression (with seconds), e.g. \"0 */15 * * * *\"."
  }
}

variable "health_schedule" {
  type        = string
  description = "ROTATOR_HEALTH_SCHEDULE: six-field NCRONTAB schedule of the credential health check."
  default     = "0 7 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.health_schedule))) == 6
    error_message = "health_schedule must be a six-field NCRONTAB expression (with seconds), e.g. \"0 7 * * * *\"."
  }
}

variable "sweep_window_days" {
  type        = number
  description = "ROTATOR_SWEEP_WINDOW_DAYS: the sweeper rotates secrets expiring within this many days (0-365)."
  default     = 30

  validation {
    condition     = var.sweep_window_days >= 0 && var.sweep_window_days <= 365
    error_message = "sweep_window_days must be from 0 to 365."
  }
}

variable "lease_seconds" {
  type        = number
  description = "ROTATOR_LEASE_SECONDS: how long a worker holds a rotation; at least 3 x max(keyvault_timeout_seconds, connect_timeout_seconds)."
  default     = 300

  validation {
    condition     = var.lease_seconds >= 1 && var.lease_seconds <= 3600
    error_message = "lease_seconds must be from 1 to 3600."
  }
}

variable "max_attempts" {
  type        = number
  description = "ROTATOR_MAX_ATTEMPTS: worker attempts per rotation before it is closed as failed (1-50)."
  default     = 5

  validation {
    condition     = var.max_attempts >= 1 && var.max_attempts <= 50 && floor(var.max_attempts) == var.max_attempts
    error_message = "max_attempts must be a whole number from 1 to 50."
  }
}

variable "attempt_backoff_seconds" {
  type        = number
  description = "ROTATOR_ATTEMPT_BACKOFF_SECONDS: wait before the next attempt, doubling, at most an hour (0-86400)."
  default     = 60

  validation {
    condition     = var.attempt_backoff_seconds >= 0 && var.attempt_backoff_seconds <= 86400
    error_message = "attempt_backoff_seconds must be from 0 to 86400."
  }
}

variable "retry_attempts" {
  type        = number
  description = "ROTATOR_RETRY_ATTEMPTS: attempts per operation on transient errors (1-20)."
  default     = 4

  validation {
    condition     = var.retry_attempts >= 1 && var.retry_attempts <= 20 && floor(var.retry_attempts) == var.retry_attempts
    error_message = "retry_attempts must be a whole number from 1 to 20."
  }
}

variable "retry_initial_seconds" {
  type        = number
  description = "ROTATOR_RETRY_INITIAL_SECONDS: first back-off (0-60)."
  default     = 1

  validation {
    condition     = var.retry_initial_seconds >= 0 && var.retry_initial_seconds <= 60
    error_message = "retry_initial_seconds must be from 0 to 60."
  }
}

variable "retry_max_seconds" {
  type        = number
  description = "ROTATOR_RETRY_MAX_SECONDS: longest single wait, Retry-After included (0-300)."
  default     = 30

  validation {
    condition     = var.retry_max_seconds >= 0 && var.retry_max_seconds <= 300
    error_message = "retry_max_seconds must be from 0 to 300."
  }
}

variable "connect_timeout_seconds" {
  type        = number
  description = "ROTATOR_CONNECT_TIMEOUT_SECONDS: database connect timeout (1-120)."
  default     = 10

  validation {
    condition     = var.connect_timeout_seconds >= 1 && var.connect_timeout_seconds <= 120
    error_message = "connect_timeout_seconds must be from 1 to 120."
  }
}

variable "keyvault_timeout_seconds" {
  type        = number
  description = "ROTATOR_KEYVAULT_TIMEOUT_SECONDS: Key Vault connect and read timeout (1-120)."
  default     = 20

  validation {
    condition     = var.keyvault_timeout_seconds >= 1 && var.keyvault_timeout_seconds <= 120
    error_message = "keyvault_timeout_seconds must be from 1 to 120."
  }
}

variable "log_level" {
  type        = string
  description = "ROTATOR_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "trust_app_service_auth" {
  type        = bool
  description = "ROTATOR_TRUST_APP_SERVICE_AUTH: true only where App Service authentication is on in front of the app (this module does not configure it)."
  default     = false
}

variable "kubeconfig_secrets" {
  type        = list(string)
  description = "ROTATOR_KUBECONFIG_SECRET, as a list: `vault/secret-name` entries (a kubeconfig kept in one of var.vaults). Empty: no propagation."
  default     = []

  validation {
    condition     = alltrue([for s in var.kubeconfig_secrets : can(regex("^[0-9A-Za-z-]{3,24}/[0-9A-Za-z-]{1,127}$", s))])
    error_message = "Each kubeconfig secret must be vault/secret-name. (in-cluster is for a rotator running in Kubernetes, not in this Function App.)"
  }
}

variable "propagation_poll_seconds" {
  type        = number
  description = "ROTATOR_PROPAGATION_POLL_SECONDS (1-3600)."
  default     = 60

  validation {
    condition     = var.propagation_poll_seconds >= 1 && var.propagation_poll_seconds <= 3600
    error_message = "propagation_poll_seconds must be from 1 to 3600."
  }
}

variable "propagation_watch_minutes" {
  type        = number
  description = "ROTATOR_PROPAGATION_WATCH_MINUTES (0-1440)."
  default     = 60

  validation {
    condition     = var.propagation_watch_minutes >= 0 && var.propagation_watch_minutes <= 1440
    error_message = "propagation_watch_minutes must be from 0 to 1440."
  }
}

variable "rotation_events" {
  type = object({
    # ROTATOR_EVENTS_ENDPOINT: https://<topic>.<region>-1.eventgrid.azure.net/api/events, or
    # a namespace's endpoint.
    endpoint = string
    # ROTATOR_EVENTS_TOPIC: the namespace topic's name (Event Grid namespaces only).
    namespace_topic = optional(string)
    # Resource ID of the custom topic or namespace topic: the app gets "EventGrid Data
    # Sender" there.
    resource_id = string
  })
  description = "Where rotations publish their CloudEvents (README: Rotation events out). Null: no events."
  default     = null

  validation {
    condition     = var.rotation_events == null || startswith(try(var.rotation_events.endpoint, ""), "https://")
    error_message = "rotation_events.endpoint must be an https URL."
  }
}

# ---------------------------------------------------------------------------------------------
# The Function App
# ---------------------------------------------------------------------------------------------

variable "python_version" {
  type        = string
  description = "Python of the Flex Consumption app. The project is built and tested on 3.11."
  default     = "3.11"

  validation {
    condition     = contains(["3.10", "3.11", "3.12"], var.python_version)
    error_message = "python_version must be one Flex Consumption supports: 3.10, 3.11 or 3.12."
  }
}

variable "maximum_instance_count" {
  type        = number
  description = "Most instances the app may scale out to. Rotations are few; the lease protects against concurrent workers, not their number."
  default     = 40

  validation {
    condition     = var.maximum_instance_count >= 1 && var.maximum_instance_count <= 1000 && floor(var.maximum_instance_count) == var.maximum_instance_count
    error_message = "maximum_instance_count must be a whole number from 1 to 1000."
  }
}

variable "instance_memory_in_mb" {
  type        = number
  description = "Instance memory of the Flex Consumption app: 512, 2048 or 4096."
  default     = 2048

  validation {
    condition     = contains([512, 2048, 4096], var.instance_memory_in_mb)
    error_message = "instance_memory_in_mb must be 512, 2048 or 4096."
  }
}

variable "zone_redundant" {
  type        = bool
  description = "Spread the app across availability zones (Flex regions that offer it). The platform then keeps two always-ready instances per function scale group, billed continuously; changing it recreates the plan."
  default     = false
}

variable "deployment_container_name" {
  type        = string
  description = "Blob container holding the deployment package (Flex Consumption's functionAppConfig.deployment)."
  default     = "app-package"

  validation {
    condition     = can(regex("^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$", var.deployment_container_name))
    error_message = "deployment_container_name must be a blob container name: 3-63 lower-case letters, digits and single '-'."
  }
}

variable "inbound_allowed_cidrs" {
  type        = list(string)
  description = "When non-empty, the app accepts requests only from these CIDRs and from Event Grid (service tag AzureEventGrid); everything else is denied. Empty: open to the internet (HTTP routes still need a function key)."
  default     = []

  validation {
    condition     = alltrue([for c in var.inbound_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "Each inbound_allowed_cidrs entry must be a CIDR, e.g. 203.0.113.0/24."
  }
}

variable "subnet_id" {
  type        = string
  description = "Optional regional VNet integration (off by default): a subnet delegated to Microsoft.App/environments, used by nothing else, no underscore in its name. The app's outbound traffic then leaves through that VNet, e.g. to on-premises databases over VPN or ExpressRoute."
  default     = null

  validation {
    condition = var.subnet_id == null || (
      can(regex("(?i)^/subscriptions/[0-9a-f-]{36}/resourceGroups/[^/]+/providers/Microsoft\\.Network/virtualNetworks/[^/]+/subnets/[^/_]+$", var.subnet_id))
    )
    error_message = "subnet_id must be /subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>, and Flex Consumption refuses subnet names containing '_'."
  }
}

# ---------------------------------------------------------------------------------------------
# Storage and monitoring
# ---------------------------------------------------------------------------------------------

variable "storage_replication_type" {
  type        = string
  description = "Replication of the storage account holding the journal (GRS, RAGRS, GZRS, RAGZRS, ZRS or LRS). The journal is the record of every rotation in flight."
  default     = "GRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.storage_replication_type)
    error_message = "storage_replication_type must be LRS, ZRS, GRS, RAGRS, GZRS or RAGZRS."
  }
}

variable "blob_soft_delete_days" {
  type        = number
  description = "Soft-delete retention of blobs and containers (deployment package, host state, dead letters), in days (1-365)."
  default     = 7

  validation {
    condition     = var.blob_soft_delete_days >= 1 && var.blob_soft_delete_days <= 365
    error_message = "blob_soft_delete_days must be from 1 to 365."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the Log Analytics workspace behind Application Insights (30-730 days)."
  default     = 90

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be from 30 to 730."
  }
}
