"""The plan: every check a rotation of one secret would make, made now, changing nothing.

An operator runs it before opting a secret in (``akv-rotator onboard`` runs it first), before
rotating by hand, or for every secret about to expire (``akv-rotator plan --days N``); over
HTTP it is ``POST /api/secrets/{name}/rotate?dryRun=true``. Each check passes, warns or fails
with a reason; ``skip`` says a check does not apply here and why.

It only reads: Key Vault (the secret, the target's admin secret, the kubeconfigs), the
journal, the target (fresh logins, and the catalogue queries privilege parity makes) and
the clusters (lists and gets). No version, password, journal row or annotation changes.

What it cannot prove: Key Vault has no way to test a write without making one, so the
identity's permission to write versions is shown from evidence (the rotator wrote the current
version), or skipped with that reason; the first rotation proves it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from rotation.binding import TAG_ROTATION_ID, is_opted_in, is_own_write, read_binding, read_credential
from rotation.catalogue import KINDS, BoundSecret
from rotation.errors import RotatorError, SecretNotFound
from rotation.journal.base import Journal
from rotation.keyvault import KeyVaultSecrets, SecretVersion
from rotation.pending import is_pending_companion
from rotation.propagation.api import ClusterApi
from rotation.propagation.preview import ClusterPreview, preview
from rotation.secret_value import Credential
from rotation.settings import Settings
from rotation.targets.base import Target, TargetContext

CheckStatus = Literal["pass", "warn", "fail", "skip"]
Verdict = Literal["ok", "attention", "failed"]
Clusters = Callable[[], Sequence[ClusterApi]]


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome. ``subject`` names what it looked at when there are several
    (a consumer, a workload); the detail never holds a secret value."""

    check: str
    status: CheckStatus
    detail: str
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The plan for one secret: what is there, and every check with its outcome."""

    vault: str
    secret: str
    version: str | None = None
    expires_on: datetime | None = None
    target: str | None = None
    strategy: str | None = None
    checks: tuple[Check, ...] = ()

    @property
    def verdict(self) -> Verdict:
        """``failed`` if any check failed, ``attention`` if any warned, else ``ok``."""
        statuses = {c.status for c in self.checks}
        if "fail" in statuses:
            return "failed"
        return "attention" if "warn" in statuses else "ok"

    def public(self) -> dict[str, object]:
        """The plan as JSON for HTTP and ``--output json``."""
        return {
            "vault": self.vault, "secret": self.secret, "version": self.version,
            "expiresOn": self.expires_on.isoformat(timespec="seconds") if self.expires_on else None,
            "target": self.target, "strategy": self.strategy, "verdict": self.verdict,
            "checks": [{"check": c.check, "status": c.status, "detail": c.detail,
                        **({"subject": c.subject} if c.subject else {})} for c in self.checks],
        }


@dataclass
class _Checks:
    items: list[Check] = field(default_factory=list)

    def add(self, check: str, status: CheckStatus, detail: str, subject: str | None = None) -> None:
        self.items.append(Check(check, status, detail, subject))


class Preflight:
    """Makes plans. Built once per process, like the rotation service."""

    def __init__(self, *, settings: Settings, vaults: Callable[[str], KeyVaultSecrets],
                 journal: Journal, targets: Callable[[TargetContext], Target],
                 clusters: Clusters | None, clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._vaults = vaults
        self._journal = journal
        self._targets = targets
        self._clusters = clusters
        self._clock = clock

    def plan(self, vault: str, secret: str, *, tags: Mapping[str, str] | None = None) -> Plan:
        """Every check for ``vault/secret``. ``tags`` replaces the current version's tags
        (``onboard`` asks whether the tags it would write work) without writing them."""
        checks = _Checks()
        try:
            current = self._vaults(vault).latest(secret)
        except SecretNotFound:
            checks.add("secret", "fail", f"no secret {secret!r} in vault {vault!r}")
            return Plan(vault, secret, checks=tuple(checks.items))
        except RotatorError as exc:
            checks.add("secret", "fail", f"cannot read it: {exc}")
            return Plan(vault, secret, checks=tuple(checks.items))
        plan = Plan(vault, current.name, current.version, current.expires_on)
        bound = self._binding(current, tags, checks)
        if bound is not None:
            plan = Plan(vault, current.name, current.version, current.expires_on,
                        bound.target.target_id, bound.strategy)
            self._target_checks(current, bound, checks)
            self._write_evidence(current, checks)
            self._consumers(current, tags if tags is not None else current.tags, checks)
        return Plan(plan.vault, plan.secret, plan.version, plan.expires_on, plan.target,
                    plan.strategy, tuple(checks.items))

    def due(self, vault: str, days: float) -> list[str]:
        """Opted-in secrets of ``vault`` whose current version expires within ``days`` (or
        never): those a sweep would rotate in that window."""
        horizon = self._clock() + timedelta(days=days)
        return sorted(s.name for s in self._vaults(vault).list_secrets()
                      if s.enabled and is_opted_in(s.tags) and not is_pending_companion(s.name)
                      and (s.expires_on is None or s.expires_on <= horizon))

    # -- the checks ------------------------------------------------------------------------

    def _binding(self, current: SecretVersion, tags: Mapping[str, str] | None,
                 checks: _Checks) -> BoundSecret | None:
        if not current.enabled:
            checks.add("secret", "fail", f"the current version {current.version} is disabled")
            return None
        checks.add("secret", "pass",
                   f"version {current.version} is enabled{_expiry(current, self._clock())}")
        try:
            binding = read_binding(current.tags if tags is None else tags,
                                   default_validity_days=self._settings.validity_days,
                                   default_grace_hours=self._settings.protocol.grace_hours)
        except RotatorError as exc:
            checks.add("tags", "fail", str(exc))
            return None
        too_short = self._settings.validity_problem(binding.validity_days, "tag rotator-validity-days")
        if too_short:
            checks.add("tags", "fail", too_short)
            return None
        checks.add("tags", "pass", f"target {binding.target_id!r}, new versions live "
                                   f"{binding.validity_days} days")
        try:
            bound = self._settings.targets.bind(current.vault, current.name, binding,
                                                value=current.value, content_type=current.content_type)
        except RotatorError as exc:
            checks.add("target", "fail", str(exc))
            return None
        checks.add("target", "pass", f"{bound.target.kind} target {bound.target.target_id!r} at "
                                     f"{bound.target.address} admits login {bound.credential.username!r}"
                                     f" with strategy {bound.strategy}")
        active = self._journal.active(current.vault, current.name)
        if active is not None:
            checks.add("rotation", "warn", f"rotation {active.rotation_id} is {active.status} "
                                           f"(step {active.step}); a new one starts after it settles")
        return bound

    def _target_checks(self, current: SecretVersion, bound: BoundSecret, checks: _Checks) -> None:
        definition = bound.target
        admin: Credential | None = None
        if definition.admin_secret is None:
            checks.add("admin-login", "skip", "the target names no admin login: the current "
                                              "credential changes itself")
        else:
            try:
                stored = self._vaults(definition.admin_secret.vault).latest(definition.admin_secret.name)
                admin = read_credential(stored.value, stored.content_type, None)
            except RotatorError as exc:
                checks.add("admin-login", "fail", f"admin secret {definition.admin_secret}: {exc}")
                return
        target = self._targets(TargetContext(definition, bound.strategy, admin,
                                             self._settings.connect_timeout_seconds))
        if admin is not None:
            self._login("admin-login", target, admin, f"admin login {admin.username!r}", checks,
                        minting=KINDS[definition.kind].mints)
        works = self._login("current-credential", target, bound.credential,
                            f"login {bound.credential.username!r} with the current version",
                            checks, recoverable=definition.allow_password_recovery and admin is not None)
        try:
            following = target.next_username(bound.credential)
            for login in {bound.credential.username, following}:
                self._settings.targets.check_login(definition, login, vault=current.vault,
                                                   secret=current.name, admin=admin)
            differences = target.parity_differences(bound.credential) if works else []
        except RotatorError as exc:
            checks.add("next-login", "fail", str(exc))
            return
        except Exception as exc:  # a driver's error; its type says enough, its text may not
            checks.add("next-login", "fail", f"could not compare the logins: {type(exc).__name__}")
            return
        if differences:
            status: CheckStatus = "warn" if definition.privilege_parity == "warn" else "fail"
            checks.add("next-login", status, f"{following!r} differs from "
                                             f"{bound.credential.username!r}: " + "; ".join(differences))
        elif following != bound.credential.username:
            checks.add("next-login", "pass", f"the next credential goes to {following!r}, at "
                                             f"privilege parity with {bound.credential.username!r}")
        else:
            checks.add("next-login", "pass", f"the next credential is a new one for {following!r}")

    @staticmethod
    def _login(name: str, target: Target, credential: Credential, what: str, checks: _Checks, *,
               minting: bool = False, recoverable: bool = False) -> bool:
        if minting:
            checks.add(name, "skip", "tokens are minted by the service user itself; no admin logs in")
            return True
        try:
            works = target.accepts(credential)
        except RotatorError as exc:
            checks.add(name, "fail", f"{what}: {exc}")
            return False
        except Exception as exc:  # a driver's error; its type says enough, its text may not
            checks.add(name, "fail", f"{what}: {type(exc).__name__}")
            return False
        if works:
            checks.add(name, "pass", f"{what} logs in")
        elif recoverable:
            checks.add(name, "warn", f"{what} is refused; the target allows the admin to recover it")
        else:
            checks.add(name, "fail", f"{what} is refused: store the working credential as a new "
                                     "version (a rotation only changes a login it can prove)")
        return works

    def _write_evidence(self, current: SecretVersion, checks: _Checks) -> None:
        if is_own_write(current.tags):
            checks.add("keyvault-write", "pass", f"the rotator wrote the current version "
                                                 f"(rotation {current.tags.get(TAG_ROTATION_ID)})")
        else:
            checks.add("keyvault-write", "skip", "Key Vault cannot test a write without making "
                                                 "one; the first rotation proves the identity "
                                                 "may write versions (Key Vault Secrets Officer)")

    def _consumers(self, current: SecretVersion, tags: Mapping[str, str], checks: _Checks) -> None:
        if self._clusters is None:
            checks.add("consumers", "skip", "no cluster is configured (ROTATOR_KUBECONFIG_SECRET)")
            return
        vault = self._settings.vault(current.vault)
        url = vault.url if vault is not None else f"https://{current.vault}.vault.azure.net"
        for cluster in preview(self._clusters(), vault_url=url, secret=current.name, tags=tags):
            self._cluster_checks(cluster, checks)

    @staticmethod
    def _cluster_checks(cluster: ClusterPreview, checks: _Checks) -> None:
        if cluster.error is not None:
            checks.add("consumers", "warn", f"cluster unreachable: {cluster.error}", cluster.cluster)
            return
        if not cluster.consumers:
            checks.add("consumers", "pass", "no ExternalSecret reads this secret", cluster.cluster)
        for consumer in cluster.consumers:
            subject = (f"{cluster.cluster}/{consumer.namespace}/{consumer.kind}/{consumer.name}"
                       if consumer.namespace else f"{cluster.cluster}/{consumer.kind}/{consumer.name}")
            reason = consumer.reason.split(": ", 1)[-1]
            if consumer.action == "report":
                checks.add("consumers", "warn", f"force-sync will not refresh it: {reason}", subject)
                continue
            checks.add("consumers", "pass", f"force-sync re-syncs it: {reason}", subject)
            if consumer.kind != "ExternalSecret":
                continue
            if consumer.restarts:
                checks.add("reloader", "pass", f"Secret {consumer.target_secret!r} changing restarts "
                                               + ", ".join(consumer.restarts), subject)
            else:
                checks.add("reloader", "warn", f"no workload restarts when Secret "
                                               f"{consumer.target_secret!r} changes (no Reloader "
                                               "annotation): pods keep the old credential until "
                                               "they restart", subject)


def _expiry(current: SecretVersion, now: datetime) -> str:
    if current.expires_on is None:
        return ", no expiry (a sweep rotates it at once)"
    days = (current.expires_on - now) / timedelta(days=1)
    when = current.expires_on.isoformat(timespec="seconds")
    return f", expires {when} ({days:.0f} days)" if days >= 0 else f", expired {when}"
