"""The operator's target catalogue: the one place that knows target kinds and targets.

Whoever deploys akv-rotator declares, in ``ROTATOR_TARGETS`` (JSON) or the file named by
``ROTATOR_TARGETS_FILE``, every place a credential may be sent::

    {
      "team-a-db": {
        "kind": "postgresql",
        "address": "postgresql://db.example.com:5432/app",
        "tls": {"mode": "verify-full", "caBundle": "certs/db-ca.pem"},
        "adminSecret": "kv-prod/team-a-db-admin",
        "logins": ["app", "app_clone"],
        "secrets": ["team-a-*"],
        "vaults": ["kv-prod"],
        "strategies": ["alternating-users", "single-user"],
        "allowPasswordRecovery": false,
        "password": {"preset": "url-safe", "length": 40}
      }
    }

A secret's ``rotator-target`` tag names one of these by id. :meth:`TargetCatalogue.bind`
refuses, before anything is changed, a secret whose name or vault the target does not admit,
a login outside its ``logins``, and a login that is the target's own admin login (an admin is
never rotated through its own admin path). Every refusal is logged and counted.

Target kinds map to modules named as strings and imported on first use, so reading the
catalogue never loads a database driver. Kind-specific address checks live in driver-free
modules (``rotation.targets.pg_address``, ``rotation.targets.mysql_address``) and run when
the settings are read, so a bad address is reported at start with every other problem.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotation import telemetry
from rotation.binding import (
    SECRET_FIELDS,
    SECRET_NAME,
    TARGET_ID,
    SecretBinding,
    quote_input,
    read_credential,
)
from rotation.errors import BindingRefused, SecretNotRotatable
from rotation.ids import SecretName, VaultName
from rotation.passwords import DEFAULT_POLICY, PasswordPolicy, policy_problems
from rotation.secret_value import Credential, SecretValue
from rotation.targets import mysql_address, pg_address
from rotation.targets.address import AddressError
from rotation.targets.definition import (
    TLS_MODES,
    ParityMode,
    SecretRef,
    TargetDefinition,
    TlsSettings,
)
from rotation.urls import UnsafeUrl, checked_https_url

if TYPE_CHECKING:
    from rotation.targets.base import Target, TargetContext

logger = logging.getLogger(__name__)

Connection = tuple[dict[str, str], TlsSettings]
_FIELDS = frozenset({"kind", "address", "tls", "adminSecret", "logins", "secrets", "vaults",
                     "strategies", "allowPasswordRecovery", "privilegeParity", "description",
                     "accountHost", "password", "exclusiveTokens"})
_MAX_PATTERNS = 64


@dataclass(frozen=True, slots=True)
class TargetKind:
    """A kind of target: its module, one class per strategy, and its address rules.

    ``needs_admin`` lists strategies that cannot work without the target's admin secret.
    ``password`` is the kind's default password policy (:mod:`rotation.passwords`): every
    preset is safe in every place a database password travels, so both kinds use the default.
    ``connection`` parses and checks an address with the operator's TLS setting, raising
    ValueError with the reason; it must not import the kind's driver.
    """

    module: str
    strategies: Mapping[str, str]
    connection: Callable[[str, TlsSettings | None], Connection]
    needs_admin: frozenset[str] = frozenset()
    password: PasswordPolicy = DEFAULT_POLICY
    #: True for API tokens the server creates (:class:`~rotation.targets.base.MintingTarget`):
    #: the value is ``{"username", "token", <ref_field>}`` and no admin login takes part.
    mints: bool = False
    ref_field: str | None = None   # how the value names its token, for revoking it later
    ref_required: bool = False     # the server offers no other way to find the token

    def value_problem(self, credential: Credential) -> str | None:
        """Why ``credential``'s stored shape does not fit this kind; None when it does."""
        wanted = SECRET_FIELDS[1] if self.mints else SECRET_FIELDS[0]  # token / password
        if self.mints and credential.secret_field != wanted:
            return (f"the value must be an API token: {{\"username\", \"token\", "
                    f"\"{self.ref_field}\"}}")
        if not self.mints and credential.secret_field != wanted:
            return "the value must be a login: {\"username\", \"password\"}"
        if credential.ref_field not in (None, self.ref_field):
            return f"the value names its token by {credential.ref_field!r}; this kind uses {self.ref_field!r}"
        if self.ref_required and credential.ref is None:
            return (f"the value needs {self.ref_field!r} (the server has no other way to find the "
                    "token, and the previous token could never be revoked)")
        return None


def _postgres_connection(address: str, tls: TlsSettings | None) -> Connection:
    options, chosen = pg_address.split_tls(pg_address.parse_address(address), tls)
    problems = pg_address.check_tls(options, chosen)
    if problems:
        raise AddressError("; ".join(problems))
    return options, chosen


def _https_connection(address: str, tls: TlsSettings | None) -> Connection:
    """An API target's root URL: ``https`` only, verified against the system trust store
    or the operator's caBundle; the other TLS modes are not offered for tokens."""
    chosen = tls or TlsSettings()
    if chosen.mode != "verify-full":
        raise AddressError(f"tls mode {chosen.mode!r} is not offered for API tokens: they are "
                           "only sent over verified TLS (verify-full, optionally with caBundle)")
    try:
        root = checked_https_url(address, what="the address")
    except UnsafeUrl as exc:
        raise AddressError(str(exc).removeprefix("the address ")) from None
    return {"root": root + "/"}, chosen


def _mysql_connection(address: str, tls: TlsSettings | None) -> Connection:
    options = mysql_address.parse_address(address)
    chosen = tls or TlsSettings()
    problems = mysql_address.check_tls(chosen)
    if problems:
        raise AddressError("; ".join(problems))
    return options, chosen


KINDS: dict[str, TargetKind] = {
    "postgresql": TargetKind(
        "rotation.targets.postgres",
        {"single-user": "PostgresTarget", "alternating-users": "PostgresAlternatingUsersTarget"},
        _postgres_connection,
        needs_admin=frozenset({"alternating-users"}),
    ),
    "mysql": TargetKind(
        "rotation.targets.mysql",
        {"single-user": "MySQLTarget", "alternating-users": "MySQLAlternatingUsersTarget",
         "dual-password": "MySQLDualPasswordTarget"},
        _mysql_connection,
        needs_admin=frozenset({"alternating-users"}),
    ),
    "jenkins": TargetKind(
        "rotation.targets.jenkins", {"overlap": "JenkinsTokenTarget"}, _https_connection,
        mints=True, ref_field="tokenUuid", ref_required=True,
    ),
    "netbox": TargetKind(
        "rotation.targets.netbox", {"overlap": "NetBoxTokenTarget"}, _https_connection,
        mints=True, ref_field="tokenId",
    ),
}


@dataclass(frozen=True, slots=True)
class BoundSecret:
    """A secret the operator's target admits: the target, the strategy, its credential."""

    binding: SecretBinding
    target: TargetDefinition
    strategy: str
    credential: Credential


@dataclass(frozen=True, slots=True)
class TargetCatalogue:
    """The operator's targets by id."""

    targets: Mapping[str, TargetDefinition]

    def bind(self, vault: str, secret: str, binding: SecretBinding, *, value: SecretValue,
             content_type: str | None) -> BoundSecret:
        """Check the secret against the target its tags select; read its credential.

        Raises :class:`BindingRefused` (logged and counted) when the target does not admit
        the secret or its login, :class:`SecretNotRotatable` when the value is malformed.
        """
        target = self.targets.get(binding.target_id)
        if target is None:
            raise _refused("unknown-target", "unknown", vault, secret,
                           f"tag rotator-target names no target the operator declared "
                           f"({binding.target_id!r}); known: {', '.join(sorted(self.targets))}")
        if vault.lower() not in target.vaults:
            raise _refused("vault-not-admitted", target.target_id, vault, secret,
                           f"target {target.target_id!r} does not admit secrets of vault {vault!r}")
        if not target.admits_secret(vault, secret):
            raise _refused("secret-not-admitted", target.target_id, vault, secret,
                           f"target {target.target_id!r} does not admit secret {secret!r}")
        strategy = binding.strategy or target.default_strategy
        if strategy not in target.strategies:
            # The strategy is a tag's text, unchecked until here: quoted cut short.
            raise _refused("strategy-not-admitted", target.target_id, vault, secret,
                           f"target {target.target_id!r} allows strategies "
                           f"{', '.join(target.strategies)}, not {quote_input(strategy)}")
        if target.admin_secret is not None and target.admin_secret.same_as(vault, secret):
            raise _refused("admin-secret", target.target_id, vault, secret,
                           f"secret {secret!r} is the admin secret of target "
                           f"{target.target_id!r}; it cannot rotate through its own admin path")
        credential = read_credential(value, content_type, binding.username)
        kind = KINDS[target.kind]
        shape = kind.value_problem(credential)
        if shape is not None:
            raise SecretNotRotatable(f"target {target.target_id!r} is of kind {target.kind}: {shape}")
        if kind.mints and (binding.password_preset or binding.password_length):
            raise SecretNotRotatable(f"target {target.target_id!r} is of kind {target.kind}, whose "
                                     "server creates the tokens: remove the rotator-password-* tags")
        self.check_login(target, credential.username, vault=vault, secret=secret)
        return BoundSecret(binding, target, strategy, credential)

    def check_login(self, target: TargetDefinition, login: str, *, vault: str, secret: str,
                    admin: Credential | None = None) -> None:
        """Refuse a login the target does not admit, or that is the target's admin login."""
        if not target.admits_login(login):
            raise _refused("login-not-admitted", target.target_id, vault, secret,
                           f"target {target.target_id!r} does not admit login {login[:64]!r}")
        if admin is not None and admin.username == login:
            raise _refused("admin-login", target.target_id, vault, secret,
                           f"login {login!r} is the admin login of target {target.target_id!r}; "
                           "an admin is never rotated through its own admin path (declare a "
                           "target without adminSecret for it)")

    @classmethod
    def parse(cls, document: Any, *, vaults: tuple[VaultName, ...], base_dir: Path,
              source: str, problems: list[str]) -> TargetCatalogue:
        """Read the operator's JSON document, appending every problem to ``problems``."""
        if not isinstance(document, dict) or not document:
            problems.append(f"{source} must be a JSON object of targets by id, with at least one")
            return cls({})
        targets: dict[str, TargetDefinition] = {}
        for target_id, spec in document.items():
            where = f"{source}: target {target_id!r}"
            if not isinstance(target_id, str) or not TARGET_ID.match(target_id):
                problems.append(f"{where}: ids are lower-case letters, digits and '-' "
                                "(1-63 characters)")
                continue
            parsed = _parse_target(target_id, spec, vaults=vaults, base_dir=base_dir,
                                   where=where, problems=problems)
            if parsed is not None:
                targets[target_id] = parsed
        return cls(targets)


def build_target(context: TargetContext) -> Target:
    """Import the kind's module on first use and build its strategy's target for ``context``."""
    kind = KINDS[context.definition.kind]
    module = importlib.import_module(kind.module)
    factory = getattr(module, kind.strategies[context.strategy])
    target: Target = factory(context)
    return target


def _parse_target(target_id: str, spec: Any, *, vaults: tuple[VaultName, ...], base_dir: Path,
                  where: str, problems: list[str]) -> TargetDefinition | None:
    if not isinstance(spec, dict):
        problems.append(f"{where}: must be a JSON object")
        return None
    count = len(problems)
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        problems.append(f"{where}: unknown fields {', '.join(map(str, unknown))}")
    kind_name = spec.get("kind")
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        problems.append(f"{where}: kind must be one of {', '.join(KINDS)}")
    tls = _tls(spec.get("tls"), base_dir, where, problems)
    address = spec.get("address")
    connection: dict[str, str] = {}
    chosen_tls = tls or TlsSettings()
    if not isinstance(address, str) or not address.strip():
        problems.append(f"{where}: address is required")
    elif kind is not None:
        try:
            connection, chosen_tls = kind.connection(address, tls)
        except ValueError as exc:
            problems.append(f"{where}: address {exc}")
        chosen_tls = _resolved_bundle(chosen_tls, base_dir, where, problems)
    target_vaults = _vaults(spec.get("vaults"), vaults, where, problems)
    admin = _admin_ref(spec.get("adminSecret"), vaults, where, problems)
    strategies = _strategies(spec.get("strategies"), kind, admin is not None, where, problems)
    logins = _patterns(spec.get("logins"), "logins", where, problems)
    secrets = _patterns(spec.get("secrets"), "secrets", where, problems)
    recovery, parity = _flags(spec, where, problems)
    account_host = _account_host(spec, kind_name, where, problems)
    password = _password(spec.get("password"), kind, where, problems)
    exclusive = _token_fields(spec, kind_name, kind, admin, where=where, problems=problems)
    if kind is not None and admin is None:
        needing = [s for s in strategies if s in kind.needs_admin]
        if needing:
            problems.append(f"{where}: strategy {', '.join(needing)} needs adminSecret")
    if recovery and admin is None:
        problems.append(f"{where}: allowPasswordRecovery needs adminSecret (only an admin can "
                        "set a password nobody can prove)")
    if len(problems) > count:
        return None
    definition = TargetDefinition(
        target_id=target_id, kind=str(kind_name), address=str(address).strip(),
        connection=connection, tls=chosen_tls, admin_secret=admin, logins=logins,
        secrets=secrets, vaults=target_vaults, strategies=strategies,
        allow_password_recovery=recovery, privilege_parity=parity, account_host=account_host,
        password=password, exclusive_tokens=exclusive,
    )
    if admin is not None and definition.admits_secret(admin.vault, admin.name):
        problems.append(f"{where}: its admin secret {admin} matches its own secrets allowlist, "
                        "so the admin could be rotated through its own admin path")
        return None
    return definition


def _flags(spec: dict[str, Any], where: str, problems: list[str]) -> tuple[bool, ParityMode]:
    """``allowPasswordRecovery`` and ``privilegeParity``, checked."""
    recovery = spec.get("allowPasswordRecovery", False)
    if not isinstance(recovery, bool):
        problems.append(f"{where}: allowPasswordRecovery must be true or false")
    parity = spec.get("privilegeParity", "refuse")
    if parity not in ("refuse", "warn"):
        problems.append(f"{where}: privilegeParity must be 'refuse' or 'warn'")
    return recovery is True, "warn" if parity == "warn" else "refuse"


def _password(raw: Any, kind: TargetKind | None, where: str,
              problems: list[str]) -> PasswordPolicy:
    """``password``: the target's own preset and length, over its kind's default."""
    default = kind.password if kind is not None else DEFAULT_POLICY
    if raw is None:
        return default
    if not isinstance(raw, dict) or not raw or set(raw) - {"preset", "length"}:
        problems.append(f"{where}: password must be an object with preset and/or length")
        return default
    preset, length = raw.get("preset", default.preset), raw.get("length", default.length)
    if not isinstance(preset, str) or isinstance(length, bool) or not isinstance(length, int):
        problems.append(f"{where}: password preset must be a name and length a whole number")
        return default
    found = policy_problems(preset, length)
    problems.extend(f"{where}: {problem}" for problem in found)
    return default if found else PasswordPolicy(preset, length)


def _token_fields(spec: dict[str, Any], kind_name: Any, kind: TargetKind | None,
                  admin: SecretRef | None, *, where: str, problems: list[str]) -> bool:
    """What API-token kinds take and refuse; returns ``exclusiveTokens`` (Jenkins only)."""
    mints = kind is not None and kind.mints
    if mints and admin is not None:
        problems.append(f"{where}: kind {kind_name} rotates a token with the token itself; "
                        "remove adminSecret")
    if mints and "password" in spec:
        problems.append(f"{where}: kind {kind_name}'s server creates the tokens; remove password")
    exclusive = spec.get("exclusiveTokens", False)
    if "exclusiveTokens" in spec and kind_name != "jenkins":
        problems.append(f"{where}: exclusiveTokens applies only to kind jenkins")
    elif not isinstance(exclusive, bool):
        problems.append(f"{where}: exclusiveTokens must be true or false")
    return exclusive is True


def _account_host(spec: dict[str, Any], kind_name: Any, where: str, problems: list[str]) -> str:
    """``accountHost``: the host part of a ``mysql`` target's accounts (default ``'%'``)."""
    if "accountHost" not in spec:
        return "%"
    raw = spec["accountHost"]
    if kind_name != "mysql":
        problems.append(f"{where}: accountHost applies only to kind mysql")
    elif (not isinstance(raw, str) or not raw or len(raw) > 255
          or any(ord(ch) < 0x20 for ch in raw)):
        problems.append(f"{where}: accountHost must be a MySQL account host of 1-255 characters "
                        "(e.g. '%', '10.0.0.%', 'app.example.com')")
    else:
        return raw
    return "%"


def _tls(raw: Any, base_dir: Path, where: str, problems: list[str]) -> TlsSettings | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"mode", "caBundle"}:
        problems.append(f"{where}: tls must be an object with mode and/or caBundle")
        return None
    mode = raw.get("mode", "verify-full")
    if mode not in TLS_MODES:
        problems.append(f"{where}: tls mode must be one of {', '.join(TLS_MODES)} (modes that "
                        "can fall back to cleartext are not offered)")
        return None
    bundle = raw.get("caBundle")
    if bundle is not None and (not isinstance(bundle, str) or not bundle.strip()):
        problems.append(f"{where}: tls caBundle must be a file path")
        return None
    return TlsSettings(mode=mode, ca_bundle=bundle.strip() if bundle else None)


def _resolved_bundle(tls: TlsSettings, base_dir: Path, where: str,
                     problems: list[str]) -> TlsSettings:
    """Relative CA bundles are relative to the targets file (or the app's directory)."""
    if tls.ca_bundle is None:
        return tls
    path = Path(tls.ca_bundle)
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        problems.append(f"{where}: tls caBundle {tls.ca_bundle!r} is not a file")
    return TlsSettings(mode=tls.mode, ca_bundle=str(path))


def _vaults(raw: Any, configured: tuple[VaultName, ...], where: str,
            problems: list[str]) -> tuple[VaultName, ...]:
    if raw is None:
        return configured
    if not isinstance(raw, list) or not raw or not all(isinstance(v, str) for v in raw):
        problems.append(f"{where}: vaults must be a non-empty list of vault names")
        return ()
    names = tuple(VaultName(v.strip().lower()) for v in raw)
    unknown = [n for n in names if n not in configured]
    if unknown:
        problems.append(f"{where}: vaults {', '.join(unknown)} are not in ROTATOR_VAULTS")
    return names


def _admin_ref(raw: Any, vaults: tuple[VaultName, ...], where: str,
               problems: list[str]) -> SecretRef | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        problems.append(f"{where}: adminSecret must be 'vault/secret-name'")
        return None
    vault, _, name = raw.strip().rpartition("/")
    if not vault:
        if len(vaults) != 1:
            problems.append(f"{where}: adminSecret must name its vault ('vault/{name}') when "
                            "several vaults are configured")
            return None
        vault = vaults[0]
    if vault.lower() not in vaults:
        problems.append(f"{where}: adminSecret's vault {vault!r} is not in ROTATOR_VAULTS")
        return None
    if not SECRET_NAME.match(name):
        problems.append(f"{where}: adminSecret {name!r} is not a Key Vault secret name")
        return None
    return SecretRef(VaultName(vault.lower()), SecretName(name))


def _strategies(raw: Any, kind: TargetKind | None, has_admin: bool, where: str,
                problems: list[str]) -> tuple[str, ...]:
    """The strategies a target allows; by default every one its admin setting makes possible."""
    if kind is None:
        return ()
    if raw is None:
        return tuple(s for s in kind.strategies if has_admin or s not in kind.needs_admin)
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
        problems.append(f"{where}: strategies must be a non-empty list")
        return ()
    unknown = [s for s in raw if s not in kind.strategies]
    if unknown:
        problems.append(f"{where}: strategies {', '.join(map(repr, unknown))} are not among "
                        f"{', '.join(kind.strategies)}")
    return tuple(raw)


def _patterns(raw: Any, name: str, where: str, problems: list[str]) -> tuple[str, ...]:
    if (not isinstance(raw, list) or not raw or len(raw) > _MAX_PATTERNS
            or not all(isinstance(p, str) and p.strip() for p in raw)):
        problems.append(f"{where}: {name} must be a list of 1-{_MAX_PATTERNS} names or patterns "
                        "(fnmatch: * and ?); an empty allowlist admits nothing")
        return ()
    return tuple(p.strip() for p in raw)


def _refused(reason: str, target_id: str, vault: str, secret: str, message: str) -> BindingRefused:
    telemetry.count_refusal(reason=reason, target=target_id)
    logger.warning("binding refused", extra={"outcome": "refused", "refusal": reason,
                                             "target": target_id, "vault": vault,
                                             "secret": secret, "detail": message})
    return BindingRefused(message, reason=reason)

