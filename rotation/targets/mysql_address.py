"""MySQL and MariaDB addresses: parsed and checked without the driver, turned into PyMySQL
connection arguments.

An address is ``mysql://host[:port][/database]`` without credentials, e.g.
``mysql://db.example.com:3306/app``. Only options that say *where* to connect are accepted
(:data:`ALLOWED_OPTIONS`); anything that could carry a credential (``user``, ``password``),
load a file (``read_default_file``, ``local_infile``), run SQL in the rotator's sessions
(``init_command``) or choose TLS behind the operator's back (``ssl``, ``ssl_*``) is refused
with the reason. Query keys are percent-decoded before they are checked, so ``pass%77ord``
is ``password``. A Unix socket is not offered: the rotator runs on Azure Functions, which
reaches its databases over TCP.

TLS comes from the target's ``tls`` setting only (there is no ``sslmode`` in a MySQL URI).
Every TLS mode is handed to PyMySQL as an explicit :class:`ssl.SSLContext` rather than its
``ssl_ca``/``ssl_verify_*`` arguments, because of two things measured in PyMySQL 1.2.4's
``_create_ssl_ctx``: with no CA file (the system trust store) it turns host name checking
*off*, and without a CA or a verify flag (our ``require``) it falls into its "preferred"
mode, which silently continues in cleartext when the server offers no TLS. With a context
PyMySQL marks TLS as required and fails the connection (``CR_SSL_CONNECTION_ERROR``) when
the server does not offer it: akv-rotator never falls back to cleartext. ``disable`` is
only ever the operator's explicit choice and becomes ``ssl_disabled=True``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from rotation.targets.address import AddressError, location, query_pairs
from rotation.targets.definition import TlsSettings

SCHEME = "mysql"
DEFAULT_PORT = 3306
ALLOWED_OPTIONS = frozenset({"connect_timeout"})
_REFUSED_WHY = {
    **dict.fromkeys(("user", "username", "password", "passwd", "auth_plugin_map",
                     "server_public_key", "ssl_key_password"),
                    "it can carry or choose a credential"),
    **dict.fromkeys(("read_default_file", "read_default_group"),
                    "it makes the client load an option file, which can carry credentials and "
                    "redirect the connection"),
    "local_infile": "it lets the server read files from the rotator's machine",
    "init_command": "it runs SQL in every session of the rotator's logins",
    "sql_mode": "it changes the server session (and how the rotator's statements are read)",
    "program_name": "akv-rotator names its own sessions",
    "unix_socket": "only TCP is offered (the rotator reaches its databases over the network)",
}
_SSL_WHY = ("akv-rotator sets TLS itself from the target's tls setting "
            "(mode and caBundle); TLS options in the address are not accepted")


def parse_address(address: str) -> dict[str, str]:
    """The connection options an address names (``host``, ``port``, ``database`` …), checked."""
    text = address.strip()
    if not text.lower().startswith(f"{SCHEME}://"):
        raise AddressError("must be a mysql:// URI (mysql://host[:port][/database])")
    parts = urlsplit(text)
    problems: list[str] = []
    netloc = location(parts, problems)
    options = _host_and_port(unquote(netloc), problems)
    database = unquote(parts.path.lstrip("/"), errors="strict") if parts.path else ""
    if "/" in database or any(ord(ch) < 0x20 for ch in database):
        problems.append(f"has an invalid database name {database!r}")
    elif database:
        options["database"] = database
    for key, value in query_pairs(parts.query):
        _check_option(key.strip().lower(), key, value, options, problems)
    if problems:
        raise AddressError("; ".join(problems))
    return options


def check_tls(tls: TlsSettings) -> list[str]:
    """Problems with a TLS setting (empty when it is usable)."""
    if tls.mode == "verify-ca" and not tls.ca_bundle:
        return ["tls mode verify-ca needs caBundle (the system trust store is only for "
                "verify-full, which also checks the host name)"]
    return []


def tls_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """The TLS context for a mode, or ``None`` for ``disable`` (the operator's explicit choice).

    ``verify-full``: the CA bundle, or the system's default trust store, and the host name;
    ``verify-ca``: the CA bundle, not the host name; ``require``: encrypted, unverified.
    Raises ``OSError`` or ``ssl.SSLError`` when the CA bundle cannot be read.
    """
    if tls.mode == "disable":
        return None
    # create_default_context loads the system's default CA file and path when cafile is None.
    context = ssl.create_default_context(cafile=tls.ca_bundle if tls.mode != "require" else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.mode == "verify-full":
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
    elif tls.mode == "verify-ca":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
    else:  # require
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def pymysql_parameters(options: Mapping[str, str], context: ssl.SSLContext | None, *,
                       connect_timeout: int) -> dict[str, object]:
    """Every PyMySQL ``connect`` argument except ``user`` and ``password``.

    ``connect_timeout`` from the address wins over the caller's default. Files and local
    infile stay off whatever PyMySQL's defaults become.
    """
    parameters: dict[str, object] = {
        "host": options["host"],
        "port": int(options.get("port", DEFAULT_PORT)),
        "connect_timeout": int(options.get("connect_timeout", connect_timeout)),
        "local_infile": False,
        "read_default_file": None,
        "charset": "utf8mb4",
        "autocommit": True,
    }
    if "database" in options:
        parameters["database"] = options["database"]
    if context is None:
        parameters["ssl_disabled"] = True
    else:
        parameters["ssl"] = context
    return parameters


def _host_and_port(netloc: str, problems: list[str]) -> dict[str, str]:
    if not netloc:
        problems.append("names no host")
        return {}
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
    else:
        host, _, port = netloc.partition(":")
    if not host or "," in host or any(ch.isspace() or ch in "/\\?#" for ch in host):
        problems.append(f"has an invalid host {host!r} (one host; no lists)")
    options = {"host": host}
    if port:
        if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
            problems.append(f"has an invalid port {port!r}")
        else:
            options["port"] = port
    return options


def _check_option(key: str, raw_key: str, value: str, options: dict[str, str],
                  problems: list[str]) -> None:
    if key in _REFUSED_WHY:
        problems.append(f"option {key!r} is not allowed: {_REFUSED_WHY[key]}")
    elif key == "ssl" or key.startswith(("ssl_", "ssl-", "tls")):
        problems.append(f"option {key!r} is not allowed: {_SSL_WHY}")
    elif key not in ALLOWED_OPTIONS:
        problems.append(f"option {raw_key!r} is not one akv-rotator accepts "
                        f"({', '.join(sorted(ALLOWED_OPTIONS))})")
    elif key in options:
        problems.append(f"option {key!r} is given twice")
    elif key == "connect_timeout" and not (value.isascii() and value.isdigit()
                                           and 1 <= int(value) <= 60):
        problems.append("connect_timeout must be whole seconds from 1 to 60")
    else:
        options[key] = value
