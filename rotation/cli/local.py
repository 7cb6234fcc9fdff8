"""The CLI's direct mode: the core itself, with the operator's own Azure identity.

Settings are the app's (``ROTATOR_*``), from the environment or a ``local.settings.json``
(``--settings``); Key Vault is reached with ``DefaultAzureCredential`` (so ``az login``
works) unless the settings say static-token for a local twin. Every answer is the same JSON
the HTTP API gives, so the two modes print the same tables.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rotation.attempt import NoObserver
from rotation.cli.context import StepListener
from rotation.cli.exits import CliError, Exit
from rotation.composition import Services, build_services
from rotation.errors import ConfigurationError, RotatorError, SecretNotFound
from rotation.ids import SecretName, VaultName
from rotation.inventory import Progress, inventory
from rotation.journal.base import LeaseHeld, NotYetDue
from rotation.journal.model import RotationRecord, Step, public_view
from rotation.keyvault import KeyVaultSecrets
from rotation.service import RotationTrigger
from rotation.settings import Settings


class _Relay(NoObserver):
    """Tells the CLI's live view each step as the journal records it."""

    def __init__(self) -> None:
        self.listener: StepListener | None = None

    def after_journal(self, step: Step, record: RotationRecord) -> None:
        if self.listener is not None:
            self.listener(public_view(record))


def load_settings(settings_file: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """The app settings: the environment, overridden by a ``local.settings.json``'s Values."""
    values = dict(os.environ if env is None else env)
    if settings_file is not None:
        try:
            document = json.loads(settings_file.read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"--settings {settings_file}: {exc}", Exit.USAGE) from None
        given = document.get("Values") if isinstance(document, dict) else None
        if not isinstance(given, dict):
            raise CliError(f"--settings {settings_file}: not a local.settings.json (no \"Values\" "
                           "object)", Exit.USAGE)
        values.update({str(k): str(v) for k, v in given.items()})
    try:
        return Settings.from_env(values)
    except ConfigurationError as exc:
        raise CliError(f"the settings cannot be used: {exc}", Exit.USAGE) from None


class LocalBackend:
    """The core, built once for this command."""

    mode = "direct"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._relay = _Relay()
        self._built: Services | None = None

    @property
    def services(self) -> Services:
        if self._built is None:
            self._built = build_services(self.settings, observer=self._relay)
        return self._built

    def vault(self, requested: str | None) -> VaultName:
        """The vault a command acts on: the one asked for, or the only one configured."""
        names = [v.name for v in self.settings.vaults]
        if not requested:
            if len(names) == 1:
                return names[0]
            raise CliError(f"several vaults are configured; add --vault, one of {', '.join(names)}",
                           Exit.USAGE)
        vault = self.settings.vault(requested)
        if vault is None:
            raise CliError(f"vault {requested!r} is not configured (known: {', '.join(names)})",
                           Exit.USAGE)
        return vault.name

    def vault_names(self, requested: str | None) -> list[str]:
        return [self.vault(requested)] if requested else [v.name for v in self.settings.vaults]

    def keyvault(self, vault: str) -> KeyVaultSecrets:
        return self.services.vaults(vault)

    # -- what every mode offers ------------------------------------------------------------

    def plan(self, vault: str | None, secret: str,
             tags: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self.services.preflight.plan(self.vault(vault), secret, tags=tags).public()

    def due(self, vault: str | None, days: float) -> list[tuple[str, str]]:
        return [(name, secret) for name in self.vault_names(vault)
                for secret in self.services.preflight.due(name, days)]

    def status(self, vault: str | None, progress: Progress | None = None) -> dict[str, Any]:
        names = self.vault_names(vault)
        rows = inventory(self.settings, self.services.vaults, self.services.journal, names,
                         progress=progress)
        now = datetime.now(UTC)
        return {"generatedAt": now.isoformat(timespec="seconds"), "vaults": names,
                "secrets": [row.public(now) for row in rows]}

    def rotate(self, vault: str | None, secret: str, reason: str | None,
               listener: StepListener | None = None) -> dict[str, Any]:
        caller = f"cli:{_user()}" + (f": {reason}" if reason else "")
        self._relay.listener = listener
        try:
            record = self.services.rotation.request_rotation(
                self.vault(vault), SecretName(secret), RotationTrigger("cli", caller))
        finally:
            self._relay.listener = None
        return public_view(record)

    def history(self, vault: str | None, secret: str, limit: int) -> list[dict[str, Any]]:
        records = self.services.journal.for_secret(self.vault(vault), secret, limit=limit)
        return [public_view(r, brief=True) for r in records]

    def show(self, rotation_id: str) -> dict[str, Any]:
        record = self.services.journal.get(rotation_id)
        if record is None:
            raise SecretNotFound(f"no rotation {rotation_id}")
        return public_view(record)

    def advance(self, rotation_id: str, listener: StepListener | None = None) -> dict[str, Any]:
        """Carry an unfinished rotation on when it is due (as the sweeper would), then show
        it: a ``--wait`` from a laptop finishes what the deployed sweeper would finish."""
        record = self.services.journal.get(rotation_id)
        if record is not None and not record.finished:
            self._relay.listener = listener
            try:
                self.services.rotation.resume(rotation_id)
            except (LeaseHeld, NotYetDue):
                pass
            except RotatorError:
                pass  # journaled by the engine; show() reports it
            finally:
                self._relay.listener = None
        return self.show(rotation_id)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
