"""An operator-defined target: where credentials may go, and who may bind to it.

Whoever deploys akv-rotator declares its targets (``ROTATOR_TARGETS``, see
:mod:`rotation.catalogue`); a secret's tags only *select* one by its id. Everything that
decides where a credential is sent, how the connection is protected, and which admin
credential may be used lives here, out of reach of anyone who can merely tag a secret.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rotation.ids import SecretName, VaultName
from rotation.passwords import DEFAULT_POLICY, PasswordPolicy

TlsMode = Literal["verify-full", "verify-ca", "require", "disable"]
TLS_MODES: tuple[TlsMode, ...] = ("verify-full", "verify-ca", "require", "disable")
ParityMode = Literal["refuse", "warn"]


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A secret in a named vault (the admin secret is always pinned to one vault)."""

    vault: VaultName
    name: SecretName

    def __str__(self) -> str:
        return f"{self.vault}/{self.name}"

    def same_as(self, vault: str, name: str) -> bool:
        """Key Vault names compare case-insensitively."""
        return self.vault == vault.lower() and self.name.lower() == name.lower()


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How the connection to the target is protected; verified TLS unless the operator says."""

    mode: TlsMode = "verify-full"
    ca_bundle: str | None = None  # a PEM file; None = the system's trust store


@dataclass(frozen=True, slots=True)
class TargetDefinition:
    """One target as the operator declared it. ``connection`` is the kind's parsed address."""

    target_id: str
    kind: str
    address: str
    connection: Mapping[str, str]
    tls: TlsSettings
    admin_secret: SecretRef | None
    logins: tuple[str, ...]          # names or fnmatch patterns, case-sensitive
    secrets: tuple[str, ...]         # names or fnmatch patterns, case-insensitive
    vaults: tuple[VaultName, ...]    # the vaults whose secrets may bind
    strategies: tuple[str, ...]      # the first is the default
    allow_password_recovery: bool = False
    #: What a privilege-parity difference between alternating logins does: "refuse" the
    #: rotation before anything changes (default), or only "warn".
    privilege_parity: ParityMode = "refuse"
    #: The host part of the accounts a ``mysql`` target changes (``'app'@'<account_host>'``):
    #: MySQL and MariaDB accounts are user *and* host. Other kinds leave it at its default.
    account_host: str = "%"
    #: The preset and length of the passwords generated for this target's logins; a secret's
    #: tags may choose another preset or length (:mod:`rotation.passwords`).
    password: PasswordPolicy = DEFAULT_POLICY
    #: Jenkins: the service user's tokens belong to the rotator alone, so retiring may
    #: revoke every token but the new one, leftovers of crashed attempts included.
    exclusive_tokens: bool = False

    def admits_secret(self, vault: str, secret: str) -> bool:
        """May ``vault/secret`` bind to this target?"""
        return vault.lower() in self.vaults and any(
            fnmatch.fnmatchcase(secret.lower(), pattern.lower()) for pattern in self.secrets)

    def admits_login(self, login: str) -> bool:
        """May this target change ``login``'s credential?"""
        return any(fnmatch.fnmatchcase(login, pattern) for pattern in self.logins)

    @property
    def default_strategy(self) -> str:
        return self.strategies[0]
