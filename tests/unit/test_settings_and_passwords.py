"""Settings validation and password generation."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest

from rotation.errors import ConfigurationError
from rotation.passwords import PRESETS, PasswordPolicy, generate_password
from rotation.secret_value import SecretValue
from rotation.settings import Settings

TARGETS = {"ROTATOR_TARGETS": json.dumps({"app-db": {
    "kind": "postgresql", "address": "postgresql://db.example.com/app",
    "logins": ["app"], "secrets": ["app-db"]}})}


def test_vault_names_default_to_public_cloud_urls() -> None:
    settings = Settings.from_env({**TARGETS, "ROTATOR_VAULTS": "KV-Prod, kv2=https://kv2.vault.azure.cn/",
                                  "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert [(v.name, v.url) for v in settings.vaults] == [
        ("kv-prod", "https://kv-prod.vault.azure.net"), ("kv2", "https://kv2.vault.azure.cn")]
    assert settings.vault("KV2") is not None and settings.vault("kv3") is None


def test_every_bad_setting_is_reported_together() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"ROTATOR_VALIDITY_DAYS": "ninety", "ROTATOR_RETRY_ATTEMPTS": "0",
                           "ROTATOR_LOG_LEVEL": "LOUD", "ROTATOR_KEYVAULT_AUTH": "magic"})
    problems = caught.value.problems
    assert len(problems) == 7
    assert any("ROTATOR_TARGETS (or ROTATOR_TARGETS_FILE) is required" in p for p in problems)
    assert any("needs AzureWebJobsStorage" in p for p in problems)
    assert any("ROTATOR_VAULTS is required" in p for p in problems)


def test_static_token_is_only_for_a_loopback_twin() -> None:
    with pytest.raises(ConfigurationError, match="only for a local twin"):
        Settings.from_env({**TARGETS, "ROTATOR_VAULTS": "kv1",
                           "ROTATOR_KEYVAULT_AUTH": "static-token",
                           "ROTATOR_KEYVAULT_STATIC_TOKEN": "tok-zz9"})
    local = Settings.from_env({**TARGETS, "ROTATOR_VAULTS": "kv1=https://127.0.0.1:8443",
                               "ROTATOR_JOURNAL": "sqlite:/tmp/j.db",
                               "ROTATOR_KEYVAULT_AUTH": "static-token",
                               "ROTATOR_KEYVAULT_STATIC_TOKEN": "tok-zz9"})
    assert local.vaults[0].is_loopback
    assert "tok-zz9" not in repr(local)  # the token is kept out of repr


def test_vault_urls_must_be_https() -> None:
    with pytest.raises(ConfigurationError, match="https"):
        Settings.from_env({**TARGETS, "ROTATOR_VAULTS": "kv1=http://127.0.0.1:8443"})


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_draws_long_mixed_distinct_passwords(preset: str) -> None:
    classes = PRESETS[preset].classes
    seen = set()
    for _ in range(200):
        password = generate_password(PasswordPolicy(preset, 24)).reveal()
        assert len(password) == 24
        assert set(password) <= set(PRESETS[preset].alphabet)
        assert not set(password) & set(":\\'\"@/?#%&=+ $`!*;")
        assert password[0] in string.ascii_letters
        assert all(set(password) & set(cls) for cls in classes)
        seen.add(password)
    assert len(seen) == 200


def test_the_default_policy_is_forty_url_safe_characters() -> None:
    password = generate_password().reveal()
    assert len(password) == 40 and set(password) <= set(PRESETS["url-safe"].alphabet)


@pytest.mark.parametrize(("preset", "length", "problem"), [
    ("base64", 40, "preset must be one of url-safe, alphanumeric"),
    ("url-safe", 15, "length must be 16-128"),
    ("alphanumeric", 129, "length must be 16-128"),
])
def test_a_policy_outside_the_presets_is_refused(preset: str, length: int, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        PasswordPolicy(preset, length)


def test_overrides_keep_what_the_tags_leave_unset() -> None:
    base = PasswordPolicy("alphanumeric", 32)
    assert base.with_overrides(None, None) == base
    assert base.with_overrides("url-safe", None) == PasswordPolicy("url-safe", 32)
    assert base.with_overrides(None, 64) == PasswordPolicy("alphanumeric", 64)


def test_secret_value_is_redacted_everywhere_but_reveal() -> None:
    value = SecretValue("p4ss-word")
    assert "p4ss" not in repr(value) + str(value) + f"{value}" + repr([value])
    assert value.reveal() == "p4ss-word"
    assert value == SecretValue("p4ss-word") and value != SecretValue("other")


def test_journal_choices() -> None:
    base = {**TARGETS, "ROTATOR_VAULTS": "kv1"}
    table = Settings.from_env({**base, "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert table.protocol.journal == "table:rotations:UseDevelopmentStorage=true"
    assert "UseDevelopmentStorage" not in repr(table)  # a connection string may hold a key
    sqlite = Settings.from_env({**base, "ROTATOR_JOURNAL": "sqlite:/var/j.db"})
    assert sqlite.protocol.journal == "sqlite:/var/j.db"
    with pytest.raises(ConfigurationError, match="must be 'table' or 'sqlite"):
        Settings.from_env({**base, "ROTATOR_JOURNAL": "postgres"})
    with pytest.raises(ConfigurationError, match="3-63 letters"):
        Settings.from_env({**base, "AzureWebJobsStorage": "x", "ROTATOR_JOURNAL_TABLE": "a-b"})


def test_the_example_local_settings_are_valid_and_declare_a_target() -> None:
    example = json.loads((Path(__file__).parents[2] / "local.settings.example.json").read_text())
    settings = Settings.from_env(example["Values"])
    target = settings.targets.targets["local-pg"]
    assert target.kind == "postgresql" and target.tls.mode == "verify-full"
    assert str(target.admin_secret) == "kv-twin/pg-admin"
    assert not settings.trust_app_service_auth
    assert example["Values"]["PYTHON_ISOLATE_WORKER_DEPENDENCIES"] == "1"  # ADR 0006


def test_clusters_come_from_named_vault_secrets_or_the_pod() -> None:
    base = {**TARGETS, "ROTATOR_VAULTS": "kv-prod,kv-ops", "ROTATOR_JOURNAL": "memory:"}
    assert Settings.from_env(base).propagation.clusters == ()
    settings = Settings.from_env({**base, "ROTATOR_KUBECONFIG_SECRET":
                                  " KV-Ops/kubeconfig-RKE2 , in-cluster"})
    assert [(c.name, c.vault, c.secret) for c in settings.propagation.clusters] == [
        ("kubeconfig-rke2", "kv-ops", "kubeconfig-RKE2"), ("in-cluster", None, None)]
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**base, "ROTATOR_PROPAGATION_POLL_SECONDS": "0",
                           "ROTATOR_KUBECONFIG_SECRET": "kv-other/k8s,kv-prod,kv-prod/a_b,"
                                                        "kv-prod/k8s,kv-ops/K8S"})
    assert caught.value.problems == [
        "ROTATOR_KUBECONFIG_SECRET: vault 'kv-other' of 'kv-other/k8s' is not in ROTATOR_VAULTS",
        "ROTATOR_KUBECONFIG_SECRET: 'kv-prod' is neither in-cluster nor vault/secret-name",
        "ROTATOR_KUBECONFIG_SECRET: 'kv-prod/a_b' is neither in-cluster nor vault/secret-name",
        "ROTATOR_KUBECONFIG_SECRET: cluster 'k8s' is listed twice",
        "ROTATOR_PROPAGATION_POLL_SECONDS must be between 1.0 and 3600.0, got 0",
    ]
