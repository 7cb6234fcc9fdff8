"""Where credentials may go: PostgreSQL addresses, TLS parameters and HTTPS URLs.

Each refused form is one that worked against the tag-driven model (issue: trust model):
credentials smuggled into the address, options that write files or change the server
session, and URLs two parsers read two ways.
"""

from __future__ import annotations

import pytest

from rotation.targets.definition import TlsSettings
from rotation.targets.pg_address import (
    AddressError,
    check_tls,
    libpq_parameters,
    parse_address,
    split_tls,
)
from rotation.urls import UnsafeUrl, checked_https_url, is_loopback


@pytest.mark.parametrize(("address", "reason"), [
    ("postgresql://db/app?password=pw", "'password' is not allowed: it can carry"),
    ("postgresql://db/app?pass%77ord=pw", "'password' is not allowed"),  # percent-encoded key
    ("postgresql://db/app?user=postgres", "'user' is not allowed"),
    ("postgresql://db/app?sslkeylogfile=/tmp/keys", "write TLS session keys"),
    ("postgresql://db/app?passfile=/etc/pgpass", "'passfile' is not allowed"),
    ("postgresql://db/app?service=prod", "'service' is not allowed"),
    ("postgresql://db/app?sslkey=/k&sslcert=/c", "'sslkey' is not allowed"),
    ("postgresql://db/app?options=-c%20log_statement%3Dall", "changes the server session"),
    ("postgresql://db/app?require_auth=password", "sets TLS and authentication itself"),
    ("postgresql://db/app?channel_binding=disable", "sets TLS and authentication itself"),
    ("postgresql://db/app?sslmode=prefer", "fall back to cleartext"),
    ("postgresql://db/app?sslmode=allow", "fall back to cleartext"),
    ("postgresql://app:pw@db/app", "user name or password"),
    ("postgresql://app@db/app", "user name or password"),
    ("host=db dbname=app password=pw", "must be a postgresql:// URI"),
    ("postgresql://db/app?frobnicate=1", "not one akv-rotator accepts"),
    ("postgresql://db/app?dbname=other", "given twice"),
    ("postgresql://db:99999/app", "invalid port"),
    ("postgresql://db/app#frag", "fragment"),
    ("postgresql:///app", "names no host"),
])
def test_unsafe_addresses_are_refused_with_the_reason(address: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        parse_address(address)


def test_every_problem_in_an_address_is_listed() -> None:
    with pytest.raises(AddressError) as caught:
        parse_address("postgresql://u:p@db/app?password=x&sslkeylogfile=/k&user=y")
    message = str(caught.value)
    for part in ("user name or password", "'password'", "sslkeylogfile", "'user'"):
        assert part in message


def test_plain_addresses_become_verified_scram_only_connections() -> None:
    options = parse_address("postgresql://db1.example.com:5433,db2.example.com/app"
                            "?target_session_attrs=read-write&connect_timeout=5")
    assert options == {"host": "db1.example.com,db2.example.com", "port": "5433,5432",
                       "dbname": "app", "target_session_attrs": "read-write",
                       "connect_timeout": "5"}
    parameters = libpq_parameters(options, TlsSettings())
    assert parameters["sslmode"] == "verify-full"
    assert parameters["sslrootcert"] == "system"
    assert parameters["channel_binding"] == "require"
    assert parameters["require_auth"] == "scram-sha-256"


def test_operator_tls_choices_map_onto_libpq() -> None:
    options = parse_address("postgresql://db/app")
    own_ca = libpq_parameters(options, TlsSettings("verify-ca", "/etc/ca.pem"))
    assert own_ca["sslmode"] == "verify-ca" and own_ca["sslrootcert"] == "/etc/ca.pem"
    encrypted = libpq_parameters(options, TlsSettings("require"))
    assert encrypted["channel_binding"] == "require" and "sslrootcert" not in encrypted
    plain = libpq_parameters(options, TlsSettings("disable"))
    assert plain["sslmode"] == "disable" and "channel_binding" not in plain
    assert plain["require_auth"] == "scram-sha-256"  # still never cleartext or MD5
    assert check_tls(options, TlsSettings("verify-ca")) == [
        "tls mode verify-ca needs caBundle (the system trust store is only for verify-full, "
        "which also checks the host name)"]


def test_tls_may_be_stated_in_the_address_or_the_setting_but_not_both() -> None:
    options = parse_address("postgresql://db/app?sslmode=verify-ca&sslrootcert=/etc/ca.pem")
    rest, tls = split_tls(options, None)
    assert tls == TlsSettings("verify-ca", "/etc/ca.pem") and "sslmode" not in rest
    with pytest.raises(AddressError, match="states TLS twice"):
        split_tls(options, TlsSettings())


def test_unix_sockets_are_local_so_tls_does_not_apply() -> None:
    options = parse_address("postgresql:///app?host=/var/run/postgresql")
    parameters = libpq_parameters(options, TlsSettings())
    assert parameters == {"host": "/var/run/postgresql", "dbname": "app",
                          "require_auth": "scram-sha-256"}
    mixed = parse_address("postgresql://db/app")
    assert check_tls({**mixed, "host": "db,/var/run/postgresql"}, TlsSettings())


@pytest.mark.parametrize("url", [
    "https://192.0.2.2:8443\\@localhost",  # urlsplit says localhost; the HTTP stack, 192.0.2.2
    "https://user:pw@kv.vault.azure.net",
    "https://kv.vault.azure.net@evil.example",
    "http://kv.vault.azure.net",
    "https://kv.vault.azure.net/?api-version=1",
    "https://kv.vault.azure.net/#x",
    "https://kv .vault.azure.net",
    "https://",
])
def test_unsafe_https_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        checked_https_url(url, what="vault URL")


def test_loopback_is_decided_by_the_http_stacks_parser() -> None:
    assert is_loopback("https://127.0.0.1:8443")
    assert is_loopback("https://[::1]:8443")
    assert is_loopback("https://localhost:8443")
    assert not is_loopback("https://192.0.2.2:8443\\@localhost")
    assert not is_loopback("https://kv.vault.azure.net")
    assert checked_https_url("https://kv.vault.azure.net/", what="x") == "https://kv.vault.azure.net"
