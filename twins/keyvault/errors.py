"""Key Vault error responses, with the service's own wording.

Clients branch on ``error.code`` and ``error.innererror.code`` (the rotator, the Azure SDK's
pollers, Terraform), and people grep logs for the messages, so every error the twin sends is
built here from text captured from the real service. Where no capture exists the factory says
so in its docstring: that wording is the twin's, not Key Vault's.

Sources: Azure SDK recordings (azure-sdk-for-js ``keyvault-secrets/recordings``), the .NET
sample ``Sample4_ErrorResponse.cs``, the C++ SDK key tests, and issues quoting real responses
(see each factory).
"""

from __future__ import annotations

from typing import Any

NOT_FOUND_HELP = (
    "If you recently deleted this secret you may be able to recover it using the correct "
    "recovery command. For help resolving this issue, please see "
    "https://go.microsoft.com/fwlink/?linkid=2125182"
)

THROTTLED_MESSAGE = (
    "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"
)

# Codes the twin uses when a fault is injected without an explicit code. 429's code and
# message are Key Vault's (protocols.md section 2.7); the 5xx ones are the usual ARM
# spellings (inference: no capture of a Key Vault 5xx body was found).
DEFAULT_FAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadParameter", "The request was rejected by the twin's fault injection."),
    401: ("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
    403: ("Forbidden", "The operation was forbidden by the twin's fault injection."),
    404: ("NotFound", "The resource was not found (twin fault injection)."),
    408: ("RequestTimeout", "The request timed out (twin fault injection)."),
    409: ("Conflict", "The request conflicted (twin fault injection)."),
    429: ("Throttled", THROTTLED_MESSAGE),
    500: ("InternalServerError", "An internal server error occurred. Please retry."),
    502: ("BadGateway", "The gateway received an invalid response. Please retry."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
    504: ("GatewayTimeout", "The gateway timed out. Please retry."),
}


class VaultError(Exception):
    """A Key Vault error response: HTTP status plus the ``{"error": ...}`` body.

    Raised by the store for rule violations and rendered by the server unchanged, so the rules
    and their wire form live in one place.
    """

    def __init__(self, status: int, code: str, message: str, inner_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code

    def body(self) -> dict[str, Any]:
        """Return the ``KeyVaultError`` JSON object (swagger: ``{error: {code, message, innererror}}``)."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner_code is not None:
            error["innererror"] = {"code": self.inner_code}
        return {"error": error}

    def __repr__(self) -> str:
        return f"VaultError(status={self.status}, code={self.code!r}, inner={self.inner_code!r})"


def secret_not_found(name: str, version: str | None = None) -> VaultError:
    """404 for an active secret or version (SDK recordings; ``name/version`` form for versions)."""
    name_id = f"{name}/{version}" if version else name
    return VaultError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {name_id} was not found in this key vault. {NOT_FOUND_HELP}",
    )


def deleted_secret_not_found(name: str) -> VaultError:
    """404 from ``/deletedsecrets/{name}``, including while a delete is still in progress.

    Wording from the azure-sdk-for-js recording ``can update a disabled secret``.
    """
    return VaultError(404, "SecretNotFound", f"Deleted Secret not found: {name}")


def secret_disabled() -> VaultError:
    """403 for reading a disabled version (SDK recordings and several emulators agree)."""
    return VaultError(
        403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled"
    )


def deleted_but_recoverable(name: str) -> VaultError:
    """409 for re-creating a soft-deleted name (.NET ``Sample4_ErrorResponse.cs``)."""
    return VaultError(
        409,
        "Conflict",
        f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be "
        "reused; in this state, the secret can only be recovered or purged.",
        "ObjectIsDeletedButRecoverable",
    )


def being_deleted_on_create(name: str) -> VaultError:
    """409 for re-creating a name whose delete is in flight (C++ SDK tests, secret wording)."""
    return VaultError(
        409,
        "Conflict",
        f"Secret {name} is currently being deleted and cannot be re-created; retry later.",
        "ObjectIsBeingDeleted",
    )


def being_deleted() -> VaultError:
    """409 for purge/recover while the delete is in flight (JS SDK test helpers, recordings)."""
    return VaultError(409, "Conflict", "Secret is currently being deleted.", "ObjectIsBeingDeleted")


def invalid_name(name: str) -> VaultError:
    """400 for a name outside ``^[0-9a-zA-Z-]{1,127}$`` (quoted by Java and Rust SDK tests)."""
    return VaultError(400, "BadParameter", f"The request URI contains an invalid name: {name}")


def property_invalid() -> VaultError:
    """400 for too many tags / too-long tags or content type.

    Key Vault answers 16 tags with exactly this text, trailing CRLF included
    (hashicorp/terraform-provider-azurerm#16780). Using it for over-long tag names, values and
    content types too is an inference.
    """
    return VaultError(400, "BadParameter", "Property has invalid value\r\n")


def secret_too_large(limit: int) -> VaultError:
    """400 for a value over the limit (message and inner code quoted from a real rejection)."""
    return VaultError(
        400,
        "BadParameter",
        f"Secret is beyond the maximum permitted length of {limit} characters.",
        "SecretTooLarge",
    )


def throttled() -> VaultError:
    """429 ``Throttled`` beyond a service limit: the body of a captured real response.

    vcsjones/AzureSignTool#219 quotes it (protocols.md section 2.7); no ``innererror``.
    """
    return VaultError(429, "Throttled", THROTTLED_MESSAGE)


def bad_parameter(message: str) -> VaultError:
    """400 ``BadParameter`` with twin wording, for malformed requests no capture covers."""
    return VaultError(400, "BadParameter", message)


def unauthorized_missing_token() -> VaultError:
    """401 for a request without a bearer token (SDK recordings, 2022 and later)."""
    return VaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")


def unauthorized_bad_token() -> VaultError:
    """401 for a token the twin does not accept.

    The real service validates a JWT; the ``Error validating token`` shape follows the
    Azurite-style Key Vault emulator (inference: exact text varies with the failure).
    """
    return VaultError(401, "Unauthorized", "Error validating token: 'IDX10501'.")


def not_implemented(method: str, path: str) -> VaultError:
    """501 for operations the twin does not model (backup/restore, keys, certificates)."""
    return VaultError(501, "NotImplemented", f"The Key Vault twin does not implement {method} {path}.")
