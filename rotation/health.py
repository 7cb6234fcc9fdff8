"""Credential health: does each opted-in secret's current credential still log in?

A password changed out of band, a database restored from a backup, an asynchronous replica
promoted after a failover: each leaves Key Vault holding a credential the target no longer
accepts, and consumers fail at their next login. This check finds that first. It runs on its
own timer (``ROTATOR_HEALTH_SCHEDULE``), changes nothing, and for every secret whose current
version is refused logs ``credential drift`` and counts ``rotator.credential.drift``.

Secrets with an unfinished rotation are skipped (the rotation owns them until it settles),
and so are secrets the operator's targets do not admit (refused bindings are reported where
rotations are attempted).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from rotation import telemetry
from rotation.binding import is_opted_in, read_binding, read_credential
from rotation.errors import RotatorError
from rotation.journal.base import Journal
from rotation.keyvault import KeyVaultSecrets
from rotation.pending import is_pending_companion
from rotation.settings import Settings
from rotation.targets.base import Target, TargetContext

logger = logging.getLogger(__name__)


@dataclass
class HealthReport:
    """What one check found, for its log line and for tests."""

    healthy: list[str] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(items) for name, items in vars(self).items()}


class CredentialHealth:
    """Proves, read-only, that every opted-in secret's current credential logs in."""

    def __init__(self, *, settings: Settings, vaults: Callable[[str], KeyVaultSecrets],
                 journal: Journal, targets: Callable[[TargetContext], Target]) -> None:
        self._settings = settings
        self._vaults = vaults
        self._journal = journal
        self._targets = targets

    def check(self) -> HealthReport:
        report = HealthReport()
        for vault in self._settings.vaults:
            try:
                secrets = self._vaults(vault.name).list_secrets()
            except RotatorError as exc:
                logger.warning("health check could not list secrets",
                               extra={"vault": vault.name, "error": type(exc).__name__})
                report.unknown.append(vault.name)
                continue
            for summary in secrets:
                if not (summary.enabled and is_opted_in(summary.tags)) or is_pending_companion(
                        summary.name):
                    continue
                if self._journal.active(vault.name, summary.name) is not None:
                    report.skipped.append(summary.name)
                    continue
                self._check_one(vault.name, summary.name, report)
        logger.info("credential health checked", extra={"outcome": "checked", **report.counts()})
        return report

    def _check_one(self, vault: str, secret: str, report: HealthReport) -> None:
        kv = self._vaults(vault)
        try:
            current = kv.latest(secret)
            binding = read_binding(current.tags, default_validity_days=self._settings.validity_days)
            bound = self._settings.targets.bind(vault, secret, binding, value=current.value,
                                                content_type=current.content_type)
            admin = None
            if bound.target.admin_secret is not None:
                ref = bound.target.admin_secret
                stored = self._vaults(ref.vault).latest(ref.name)
                admin = read_credential(stored.value, stored.content_type, None)
            target = self._targets(TargetContext(bound.target, bound.strategy, admin,
                                                 self._settings.connect_timeout_seconds))
            works = target.accepts(bound.credential)
        except Exception as exc:
            logger.warning("health check could not check a secret",
                           extra={"vault": vault, "secret": secret, "error": type(exc).__name__})
            report.unknown.append(secret)
            return
        if works:
            report.healthy.append(secret)
            return
        telemetry.count_drift(vault=vault, target=bound.target.target_id)
        logger.warning("credential drift: the current version does not log in",
                       extra={"outcome": "drift", "vault": vault, "secret": secret,
                              "version": current.version, "target": bound.target.target_id})
        report.drifted.append(secret)
