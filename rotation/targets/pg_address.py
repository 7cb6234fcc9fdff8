"""PostgreSQL addresses: parsed and checked without the driver, turned into libpq parameters.

An address is a libpq URI without credentials, e.g. ``postgresql://db.example.com:5432/app``
or ``postgresql:///app?host=/var/run/postgresql`` (a Unix socket). Only options that say
*where* to connect are accepted; anything that could carry a credential (``user``,
``password``, ``passfile``, ``service``, client keys), write a file (libpq 18's
``sslkeylogfile``), change the server session (``options``) or weaken authentication
(``require_auth``, ``channel_binding``) is refused with the reason. ``sslmode`` and
``sslrootcert`` may be given in the address or in the target's ``tls`` setting (not both);
``sslmode`` must be one that cannot fall back to cleartext (``prefer`` and ``allow`` can).
Query keys are percent-decoded before they are checked, so ``pass%77ord`` is ``password``.

Every connection then gets ``require_auth=scram-sha-256`` (libpq refuses a server that asks
for a cleartext or MD5 password instead of answering it) and, over TCP with TLS,
``channel_binding=require`` plus ``sslmode=verify-full`` unless the operator chose otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from rotation.targets.address import AddressError, location, query_pairs
from rotation.targets.definition import TLS_MODES, TlsSettings

SCHEMES = ("postgresql", "postgres")
ALLOWED_OPTIONS = frozenset({
    "host", "hostaddr", "port", "dbname", "connect_timeout", "target_session_attrs",
    "load_balance_hosts", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "sslmode", "sslrootcert",
})
SAFE_SSLMODES = TLS_MODES
_REFUSED_WHY = {
    **dict.fromkeys(("user", "password", "passfile", "service", "servicefile", "sslpassword",
                     "sslkey", "sslcert", "sslcertmode", "krbsrvname", "gsslib",
                     "oauth_issuer", "oauth_client_id", "oauth_client_secret", "oauth_scope"),
                    "it can carry or choose a credential"),
    "sslkeylogfile": "it makes the client write TLS session keys to a file",
    "options": "it changes the server session (e.g. its logging) for the rotator's logins",
    **dict.fromkeys(("sslcrl", "sslcrldir", "sslnegotiation",
                     "sslsni", "ssl_min_protocol_version", "ssl_max_protocol_version",
                     "sslcompression", "gssencmode", "gssdelegation", "channel_binding",
                     "require_auth", "requirepeer"),
                    "akv-rotator sets TLS and authentication itself (sslmode and "
                    "sslrootcert, or the target's tls setting, choose them)"),
    "application_name": "akv-rotator names its own sessions",
}
REQUIRED_AUTH = "scram-sha-256"




def parse_address(address: str) -> dict[str, str]:
    """The libpq connection options an address names (host, port, dbname …), all checked."""
    text = address.strip()
    if not text.lower().startswith(tuple(f"{s}://" for s in SCHEMES)):
        raise AddressError("must be a postgresql:// URI (key=value connection strings are not "
                           "accepted, so that every option can be checked)")
    parts = urlsplit(text)
    problems: list[str] = []
    netloc = location(parts, problems)
    options = _hosts_and_ports(netloc, problems)
    dbname = unquote(parts.path.lstrip("/"), errors="strict") if parts.path else ""
    if dbname:
        options["dbname"] = dbname
    for key, value in query_pairs(parts.query):
        _check_option(key.strip().lower(), key, value, options, problems)
    if problems:
        raise AddressError("; ".join(problems))
    if "host" not in options:
        raise AddressError("names no host (give one in the URI, or ?host=/socket/dir)")
    return options


def split_tls(options: Mapping[str, str], tls: TlsSettings | None) -> tuple[dict[str, str],
                                                                         TlsSettings]:
    """Take ``sslmode``/``sslrootcert`` out of the address into the target's TLS setting.

    Raises :class:`AddressError` when both the address and the ``tls`` setting say it.
    """
    rest = dict(options)
    mode = rest.pop("sslmode", None)
    root = rest.pop("sslrootcert", None)
    if mode is None and root is None:
        return rest, tls or TlsSettings()
    if tls is not None:
        raise AddressError("states TLS twice: use sslmode/sslrootcert in the address or the "
                           "target's tls setting, not both")
    chosen = next(m for m in TLS_MODES if m == (mode or "verify-full"))
    return rest, TlsSettings(mode=chosen, ca_bundle=root)


def is_unix_socket(options: Mapping[str, str]) -> bool:
    """libpq treats a host that starts with '/' (or '@', abstract) as a Unix socket."""
    return all(host.startswith("/") for host in options.get("host", "").split(","))


def libpq_parameters(options: Mapping[str, str], tls: TlsSettings) -> dict[str, str]:
    """Every libpq parameter for a connection except user and password.

    Over TCP: ``sslmode`` from the operator's TLS mode (default ``verify-full``), the CA
    bundle or the system's trust store, and ``channel_binding=require`` whenever TLS is on,
    so a man in the middle cannot relay the SCRAM exchange. Always ``require_auth``: libpq
    then never answers a cleartext or MD5 password request.
    """
    parameters = dict(options)
    parameters["require_auth"] = REQUIRED_AUTH
    if is_unix_socket(options):
        return parameters  # local: TLS does not apply to Unix sockets
    parameters["sslmode"] = tls.mode
    if tls.mode != "disable":
        parameters["channel_binding"] = "require"
        if tls.ca_bundle:
            parameters["sslrootcert"] = tls.ca_bundle
        elif tls.mode == "verify-full":
            parameters["sslrootcert"] = "system"
    return parameters


def check_tls(options: Mapping[str, str], tls: TlsSettings) -> list[str]:
    """Problems with a TLS setting for these options (empty when it is usable)."""
    if tls.mode == "verify-ca" and not tls.ca_bundle and not is_unix_socket(options):
        return ["tls mode verify-ca needs caBundle (the system trust store is only for "
                "verify-full, which also checks the host name)"]
    hosts = options.get("host", "").split(",")
    if any(h.startswith("/") for h in hosts) and not all(h.startswith("/") for h in hosts):
        return ["mixes Unix sockets and TCP hosts; declare them as two targets"]
    return []


def _hosts_and_ports(netloc: str, problems: list[str]) -> dict[str, str]:
    if not netloc:
        return {}
    hosts: list[str] = []
    ports: list[str] = []
    for item in netloc.split(","):
        host, port = _split_host_port(unquote(item))
        if not host or any(ch.isspace() or ch in "/\\?#" for ch in host):
            problems.append(f"has an invalid host {host!r}")
        hosts.append(host)
        if port:
            if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
                problems.append(f"has an invalid port {port!r}")
        ports.append(port)
    options = {"host": ",".join(hosts)}
    if any(ports):
        options["port"] = ",".join(p or "5432" for p in ports)
    return options


def _split_host_port(item: str) -> tuple[str, str]:
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else rest
    host, _, port = item.partition(":")
    return host, port


def _check_option(key: str, raw_key: str, value: str, options: dict[str, str],
                  problems: list[str]) -> None:
    if key in _REFUSED_WHY:
        problems.append(f"option {key!r} is not allowed: {_REFUSED_WHY[key]}")
    elif key not in ALLOWED_OPTIONS:
        problems.append(f"option {raw_key!r} is not one akv-rotator accepts "
                        f"({', '.join(sorted(ALLOWED_OPTIONS))})")
    elif any(ord(ch) < 0x20 for ch in value):
        problems.append(f"option {key!r} has control characters")
    elif key in options:
        problems.append(f"option {key!r} is given twice (in the URI and in its query)")
    elif key == "sslmode" and value not in SAFE_SSLMODES:
        problems.append(f"sslmode={value!r} is not allowed: only {', '.join(SAFE_SSLMODES)} "
                        "(prefer and allow fall back to cleartext)")
    elif key == "connect_timeout" and not (value.isascii() and value.isdigit()
                                           and 1 <= int(value) <= 60):
        problems.append("connect_timeout must be whole seconds from 1 to 60")
    else:
        options[key] = value
