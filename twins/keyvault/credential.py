"""A credential that hands the twin's fixed bearer token to the real Azure SDK.

The SDK's challenge policy asks the credential for a token only after the twin's 401
challenge, passing the tenant from the challenge; the twin never sees a real Entra token, so
any object with ``get_token`` would do. This one also implements ``get_token_info`` (the
newer protocol azure-core prefers) and remembers what it was asked for, so tests can check
the scope and tenant the SDK derived from the challenge.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

TOKEN_LIFETIME = 3600
DEFAULT_TOKEN = "twin-token"


@dataclass(frozen=True)
class TokenRequest:
    """What the SDK asked for: scopes and the tenant taken from the challenge."""

    scopes: tuple[str, ...]
    tenant_id: str | None


class TwinCredential:
    """``TokenCredential`` returning ``token``, valid for an hour from each call."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        self._token = token
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []

    def __repr__(self) -> str:
        return "TwinCredential(token=<redacted>)"

    @property
    def requests(self) -> list[TokenRequest]:
        """Every token request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """Return the fixed token (``azure.core.credentials.TokenCredential`` protocol)."""
        self._remember(scopes, tenant_id)
        return AccessToken(self._token, int(time.time()) + TOKEN_LIFETIME)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        """Return the fixed token (``SupportsTokenInfo`` protocol)."""
        self._remember(scopes, (options or {}).get("tenant_id"))
        return AccessTokenInfo(self._token, int(time.time()) + TOKEN_LIFETIME)

    def close(self) -> None:
        """Nothing to release; present because SDK clients close their credential."""

    def _remember(self, scopes: tuple[str, ...], tenant_id: str | None) -> None:
        with self._lock:
            self._requests.append(TokenRequest(tuple(scopes), tenant_id))
