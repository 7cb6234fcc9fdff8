"""MySQL addresses and TLS settings, checked without the driver, and the catalogue's use of them."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from rotation.catalogue import TargetCatalogue
from rotation.ids import VaultName
from rotation.targets.definition import TlsSettings
from rotation.targets.mysql_address import (
    AddressError,
    parse_address,
    pymysql_parameters,
    tls_context,
)


def test_host_port_and_database() -> None:
    assert parse_address("mysql://db.example.com:3307/app") == {
        "host": "db.example.com", "port": "3307", "database": "app"}
    assert parse_address("mysql://[::1]/app?connect_timeout=5") == {
        "host": "::1", "database": "app", "connect_timeout": "5"}


@pytest.mark.parametrize(("address", "reason"), [
    ("mysql://app:pw@db/app", "user name or password"),
    ("mysql://db/app?password=x", "carry or choose a credential"),
    ("mysql://db/app?pass%77ord=x", "carry or choose a credential"),  # percent-decoded first
    ("mysql://db/app?passwd=x", "carry or choose a credential"),
    ("mysql://db/app?user=root", "carry or choose a credential"),
    ("mysql://db/app?read_default_file=/etc/my.cnf", "option file"),
    ("mysql://db/app?local_infile=1", "read files"),
    ("mysql://db/app?init_command=SET+GLOBAL+general_log%3D0", "runs SQL"),
    ("mysql://db/app?ssl_ca=/tmp/ca.pem", "tls setting"),
    ("mysql://db/app?ssl_disabled=1", "tls setting"),
    ("mysql://db/app?charset=latin1", "not one akv-rotator accepts"),
    ("mysql://db/app?connect_timeout=999", "1 to 60"),
    ("mysql://db:99999/app", "invalid port"),
    ("mysql:///app", "names no host"),
    ("postgresql://db/app", "mysql:// URI"),
])
def test_refused_addresses_say_why(address: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        parse_address(address)


def test_refusals_never_echo_an_option_value() -> None:
    with pytest.raises(AddressError) as caught:
        parse_address("mysql://db/app?password=Sup3r-Secret")
    assert "Sup3r-Secret" not in str(caught.value)


def test_verify_full_checks_certificate_and_host_name() -> None:
    context = tls_context(TlsSettings())  # the system trust store
    assert context is not None
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_verify_ca_and_require() -> None:
    ca = tls_context(TlsSettings("verify-ca", None))
    required = tls_context(TlsSettings("require"))
    assert ca is not None and required is not None
    assert not ca.check_hostname and ca.verify_mode == ssl.CERT_REQUIRED
    assert required.verify_mode == ssl.CERT_NONE


def test_disable_is_explicit_and_turns_tls_off_rather_than_preferring_it() -> None:
    assert tls_context(TlsSettings("disable")) is None
    parameters = pymysql_parameters({"host": "db"}, None, connect_timeout=3)
    assert parameters["ssl_disabled"] is True and "ssl" not in parameters


def test_parameters_carry_the_context_and_keep_files_off() -> None:
    context = tls_context(TlsSettings())
    parameters = pymysql_parameters({"host": "db", "database": "app", "connect_timeout": "7"},
                                    context, connect_timeout=3)
    assert parameters["ssl"] is context
    assert parameters["port"] == 3306 and parameters["connect_timeout"] == 7
    assert parameters["local_infile"] is False and parameters["read_default_file"] is None
    assert "user" not in parameters and "password" not in parameters


def parse(spec: dict[str, object]) -> tuple[TargetCatalogue, list[str]]:
    problems: list[str] = []
    catalogue = TargetCatalogue.parse({"db": spec}, vaults=(VaultName("kv"),), base_dir=Path.cwd(),
                                      source="ROTATOR_TARGETS", problems=problems)
    return catalogue, problems


BASE: dict[str, object] = {"kind": "mysql", "address": "mysql://db.example.com/app",
                           "logins": ["app", "app_clone"], "secrets": ["db-*"]}


def test_catalogue_accepts_a_mysql_target_with_its_account_host() -> None:
    catalogue, problems = parse({**BASE, "accountHost": "10.0.0.%", "adminSecret": "kv/mysql-admin"})
    assert problems == []
    target = catalogue.targets["db"]
    assert target.account_host == "10.0.0.%"
    assert target.connection == {"host": "db.example.com", "database": "app"}
    assert target.tls == TlsSettings()
    assert target.strategies == ("single-user", "alternating-users", "dual-password")


def test_catalogue_defaults_account_host_and_needs_admin_for_alternating() -> None:
    catalogue, problems = parse(BASE)
    assert problems == [] and catalogue.targets["db"].account_host == "%"
    assert catalogue.targets["db"].strategies == ("single-user", "dual-password")
    _, problems = parse({**BASE, "strategies": ["alternating-users"]})
    assert any("needs adminSecret" in p for p in problems)


def test_catalogue_refuses_a_credential_in_a_mysql_address() -> None:
    _, problems = parse({**BASE, "address": "mysql://db.example.com/app?password=hunter2"})
    assert len(problems) == 1 and "carry or choose a credential" in problems[0]
    assert "hunter2" not in problems[0]
    _, problems = parse({**BASE, "address": "mysql://root:hunter2@db.example.com/app"})
    assert "user name or password" in problems[0] and "hunter2" not in problems[0]


def test_catalogue_refuses_account_host_for_other_kinds_and_verify_ca_without_bundle() -> None:
    _, problems = parse({**BASE, "kind": "postgresql", "address": "postgresql://db/app",
                         "accountHost": "%"})
    assert any("accountHost applies only to kind mysql" in p for p in problems)
    _, problems = parse({**BASE, "tls": {"mode": "verify-ca"}})
    assert any("verify-ca needs caBundle" in p for p in problems)
