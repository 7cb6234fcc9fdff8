"""The operator's target catalogue: parsed at start with every problem listed, and the
allowlists that decide which secrets and logins may bind to a target."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from rotation.binding import read_binding
from rotation.catalogue import KINDS, TargetCatalogue
from rotation.errors import BindingRefused, ConfigurationError, SecretNotRotatable
from rotation.ids import VaultName
from rotation.passwords import PasswordPolicy
from rotation.secret_value import Credential, SecretValue
from rotation.settings import Settings
from tests.support.telemetry import metric_points

VAULTS = (VaultName("kv-prod"), VaultName("kv-dev"))
TEAM_B = {
    "kind": "postgresql",
    "address": "postgresql://db-b.example.com/app",
    "adminSecret": "kv-prod/pg-admin-team-b",
    "logins": ["team_b_app", "team_b_app_clone"],
    "secrets": ["team-b-*"],
    "vaults": ["kv-prod"],
}


def catalogue(**targets: dict[str, object]) -> TargetCatalogue:
    problems: list[str] = []
    parsed = TargetCatalogue.parse(targets, vaults=VAULTS, base_dir=Path.cwd(),
                                   source="ROTATOR_TARGETS", problems=problems)
    assert not problems, problems
    return parsed


def value(username: str) -> SecretValue:
    return SecretValue(json.dumps({"username": username, "password": "x-Passw0rd"}))


def bind(cat: TargetCatalogue, vault: str, secret: str, username: str,
         **tags: str) -> object:
    binding = read_binding({"rotator-target": "team-b", **tags}, default_validity_days=30)
    return cat.bind(vault, secret, binding, value=value(username), content_type="application/json")


def test_a_target_admits_only_its_secrets_vaults_and_logins() -> None:
    cat = catalogue(**{"team-b": TEAM_B})
    bound = bind(cat, "kv-prod", "team-b-app-db", "team_b_app")
    assert bound.target.target_id == "team-b"  # type: ignore[attr-defined]
    assert bound.strategy == "single-user"  # type: ignore[attr-defined]
    with pytest.raises(BindingRefused, match="does not admit secret 'attacker-db'") as caught:
        bind(cat, "kv-prod", "attacker-db", "team_b_app")
    assert caught.value.reason == "secret-not-admitted"
    with pytest.raises(BindingRefused, match="does not admit secrets of vault 'kv-dev'"):
        bind(cat, "kv-dev", "team-b-app-db", "team_b_app")
    with pytest.raises(BindingRefused, match="does not admit login 'postgres'"):
        bind(cat, "kv-prod", "team-b-app-db", "postgres")
    with pytest.raises(BindingRefused, match="names no target the operator declared"):
        read = read_binding({"rotator-target": "team-c"}, default_validity_days=30)
        cat.bind("kv-prod", "team-b-x", read, value=value("team_b_app"), content_type=None)


def test_refusals_are_counted_by_reason() -> None:
    cat = catalogue(**{"team-b": TEAM_B})
    before = metric_points("rotator.binding.refusals")
    with pytest.raises(BindingRefused):
        bind(cat, "kv-prod", "attacker-db", "team_b_app")
    after = metric_points("rotator.binding.refusals")
    key = (("rotator.refusal.reason", "secret-not-admitted"), ("rotator.target", "team-b"))
    assert after.get(key, 0) == before.get(key, 0) + 1


def test_secret_names_match_case_insensitively_and_logins_exactly() -> None:
    cat = catalogue(**{"team-b": TEAM_B})
    bind(cat, "KV-PROD", "Team-B-App-Db", "team_b_app")
    with pytest.raises(BindingRefused):
        bind(cat, "kv-prod", "team-b-app-db", "TEAM_B_APP")


def test_the_admin_login_is_never_rotated_through_its_own_admin_path() -> None:
    cat = catalogue(**{"team-b": {**TEAM_B, "logins": ["*"]}})
    target = cat.targets["team-b"]
    admin = Credential("team_b_admin", SecretValue("a"))
    with pytest.raises(BindingRefused, match="is the admin login") as caught:
        cat.check_login(target, "team_b_admin", vault="kv-prod", secret="team-b-x", admin=admin)
    assert caught.value.reason == "admin-login"
    # The declaration check refuses an admin secret inside its target's allowlist; the bind
    # check stands behind it, for a catalogue built any other way.
    widened = replace(target, secrets=("*",))
    cat = TargetCatalogue({"team-b": widened})
    with pytest.raises(BindingRefused, match="is the admin secret") as refused:
        bind(cat, "kv-prod", "pg-admin-team-b", "team_b_app")
    assert refused.value.reason == "admin-secret"


def test_a_strategy_outside_the_targets_list_is_refused() -> None:
    cat = catalogue(**{"team-b": {**TEAM_B, "strategies": ["single-user"]}})
    with pytest.raises(BindingRefused, match="allows strategies single-user"):
        bind(cat, "kv-prod", "team-b-app-db", "team_b_app", **{"rotator-strategy": "alternating-users"})


def test_every_problem_in_the_declaration_is_listed_at_once() -> None:
    problems: list[str] = []
    TargetCatalogue.parse({
        "Bad Id": {},
        "no-kind": {"address": "postgresql://db/app", "logins": ["a"], "secrets": ["a"]},
        "leaky": {"kind": "postgresql", "address": "postgresql://db/app?password=pw",
                  "logins": [], "secrets": ["x"], "tls": {"mode": "prefer"}},
        "self-admin": {"kind": "postgresql", "address": "postgresql://db/app",
                       "adminSecret": "kv-prod/db-admin", "logins": ["*"], "secrets": ["db-*"]},
        "needs-admin": {"kind": "postgresql", "address": "postgresql://db/app",
                        "logins": ["a"], "secrets": ["a"], "strategies": ["alternating-users"],
                        "allowPasswordRecovery": True, "colour": "blue"},
        "elsewhere": {"kind": "postgresql", "address": "postgresql://db/app", "logins": ["a"],
                      "secrets": ["a"], "vaults": ["kv-other"],
                      "tls": {"mode": "verify-ca", "caBundle": "/no/such/ca.pem"}},
    }, vaults=VAULTS, base_dir=Path.cwd(), source="ROTATOR_TARGETS", problems=problems)
    text = "\n".join(problems)
    for expected in (
        "target 'Bad Id': ids are lower-case",
        "target 'no-kind': kind must be one of postgresql",
        "target 'leaky': tls mode must be one of",
        "target 'leaky': address option 'password' is not allowed",
        "target 'leaky': logins must be a list of 1-64",
        "target 'self-admin': its admin secret kv-prod/db-admin matches its own secrets",
        "target 'needs-admin': unknown fields colour",
        "target 'needs-admin': strategy alternating-users needs adminSecret",
        "target 'needs-admin': allowPasswordRecovery needs adminSecret",
        "target 'elsewhere': vaults kv-other are not in ROTATOR_VAULTS",
        "target 'elsewhere': tls caBundle '/no/such/ca.pem' is not a file",
    ):
        assert expected in text, (expected, problems)


def test_settings_read_targets_inline_or_from_a_file(tmp_path: Path) -> None:
    document = {"team-b": {**TEAM_B, "tls": {"caBundle": "ca.pem"}}}
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "targets.json").write_text(json.dumps(document))
    env = {"ROTATOR_VAULTS": "kv-prod,kv-dev", "ROTATOR_JOURNAL": "memory:",
           "ROTATOR_TARGETS_FILE": str(tmp_path / "targets.json")}
    settings = Settings.from_env(env)
    target = settings.targets.targets["team-b"]
    assert target.tls.ca_bundle == str(tmp_path / "ca.pem")  # relative to the file
    with pytest.raises(ConfigurationError, match="not both"):
        Settings.from_env({**env, "ROTATOR_TARGETS": json.dumps(document)})
    with pytest.raises(ConfigurationError, match="ROTATOR_TARGETS is not valid JSON"):
        Settings.from_env({"ROTATOR_VAULTS": "kv-prod", "ROTATOR_JOURNAL": "memory:",
                           "ROTATOR_TARGETS": "{" * 100_000})


def test_retired_tags_are_refused_so_nobody_is_surprised() -> None:
    with pytest.raises(SecretNotRotatable, match="rotator-address is no longer read"):
        read_binding({"rotator-target": "team-b", "rotator-address": "postgresql://evil/"},
                     default_validity_days=30)


def test_a_target_sets_its_own_password_policy_over_the_kinds_default() -> None:
    cat = catalogue(**{"team-b": {**TEAM_B, "password": {"preset": "alphanumeric"}},
                       "plain": {**TEAM_B, "secrets": ["plain-*"]}})
    assert cat.targets["team-b"].password == PasswordPolicy("alphanumeric", 40)
    assert cat.targets["plain"].password == KINDS["postgresql"].password == PasswordPolicy()


@pytest.mark.parametrize(("password", "problem"), [
    ({"preset": "emoji"}, "password preset must be one of url-safe, alphanumeric"),
    ({"length": 8}, "password length must be 16-128"),
    ({"length": True}, "length a whole number"),
    ({"alphabet": "abc"}, "password must be an object with preset and/or length"),
    ("url-safe", "password must be an object with preset and/or length"),
])
def test_a_bad_password_policy_in_a_declaration_is_named(password: object, problem: str) -> None:
    problems: list[str] = []
    TargetCatalogue.parse({"team-b": {**TEAM_B, "password": password}}, vaults=VAULTS,
                          base_dir=Path.cwd(), source="ROTATOR_TARGETS", problems=problems)
    assert len(problems) == 1 and problems[0].startswith("ROTATOR_TARGETS: target 'team-b': ")
    assert problem in problems[0], problems


JENKINS = {"kind": "jenkins", "address": "https://ci.example.com/jenkins/",
           "logins": ["svc-*"], "secrets": ["jenkins-*"], "vaults": ["kv-prod"]}


def test_token_kinds_take_an_https_root_and_one_strategy() -> None:
    cat = catalogue(ci=JENKINS, nb={**JENKINS, "kind": "netbox", "address": "https://nb.example.com",
                                    "secrets": ["netbox-*"]})
    assert cat.targets["ci"].connection == {"root": "https://ci.example.com/jenkins/"}
    assert cat.targets["ci"].strategies == ("overlap",)
    assert cat.targets["nb"].connection == {"root": "https://nb.example.com/"}
    assert not cat.targets["ci"].exclusive_tokens


@pytest.mark.parametrize(("change", "problem"), [
    ({"address": "http://ci.example.com/"}, "must be an https:// URL"),
    ({"address": "ftp://ci.example.com/"}, "must be an https:// URL"),
    ({"address": "https://svc:tok@ci.example.com/"}, "must not contain '@'"),
    ({"address": "https://ci.example.com/?token=x"}, "must not have a query"),
    ({"tls": {"mode": "require"}}, "tls mode 'require' is not offered for API tokens"),
    ({"tls": {"mode": "disable"}}, "tls mode 'disable' is not offered for API tokens"),
    ({"adminSecret": "kv-prod/ci-admin"}, "rotates a token with the token itself; remove adminSecret"),
    ({"password": {"preset": "url-safe"}}, "creates the tokens; remove password"),
    ({"exclusiveTokens": "yes"}, "exclusiveTokens must be true or false"),
    ({"kind": "netbox", "exclusiveTokens": True}, "exclusiveTokens applies only to kind jenkins"),
    ({"strategies": ["single-user"]}, "strategies 'single-user' are not among overlap"),
])
def test_a_bad_token_target_is_named(change: dict[str, object], problem: str) -> None:
    problems: list[str] = []
    TargetCatalogue.parse({"ci": {**JENKINS, **change}}, vaults=VAULTS, base_dir=Path.cwd(),
                          source="ROTATOR_TARGETS", problems=problems)
    assert any(problem in p for p in problems), problems


def token_value(**fields: object) -> SecretValue:
    return SecretValue(json.dumps({"username": "svc-ci", **fields}))


@pytest.mark.parametrize(("value", "tags", "problem"), [
    (token_value(password="x-Passw0rd"), {}, "the value must be an API token"),
    (token_value(token="11" + "a" * 32), {}, "needs 'tokenUuid'"),
    (token_value(token="nbt_k.t", tokenId=4), {}, "names its token by 'tokenId'"),
    (token_value(token="11" + "a" * 32, tokenUuid="u-1"), {"rotator-password-length": "20"},
     r"remove the rotator-password-\* tags"),
])
def test_a_token_value_of_the_wrong_shape_is_refused(value: SecretValue, tags: dict[str, str],
                                                     problem: str) -> None:
    cat = catalogue(ci=JENKINS)
    binding = read_binding({"rotator-target": "ci", **tags}, default_validity_days=30)
    with pytest.raises(SecretNotRotatable, match=problem):
        cat.bind("kv-prod", "jenkins-svc", binding, value=value, content_type="application/json")


def test_a_database_target_refuses_a_token_value() -> None:
    cat = catalogue(**{"team-b": TEAM_B})
    binding = read_binding({"rotator-target": "team-b"}, default_validity_days=30)
    with pytest.raises(SecretNotRotatable, match=r"must be a login: \{\"username\", \"password\"\}"):
        cat.bind("kv-prod", "team-b-app", binding, content_type="application/json",
                 value=SecretValue(json.dumps({"username": "team_b_app", "token": "t"})))
