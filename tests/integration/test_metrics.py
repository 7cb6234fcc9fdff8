"""The metrics a rotation and a sweep report, read back with the SDK's in-memory reader."""

from __future__ import annotations

from typing import Any

from azure.keyvault.secrets import SecretClient

from tests.integration.conftest import App, SecretFactory, near_expiry
from tests.support.telemetry import metric_points, metric_series, metric_units
from twins.keyvault import KeyVaultTwin

SUCCEEDED_PG = (("rotator.outcome", "succeeded"), ("rotator.target.kind", "postgresql"))


def histogram(name: str, key: tuple[tuple[str, str], ...]) -> tuple[int, float]:
    point: Any = metric_series(name).get(key)
    return (point.count, point.sum) if point is not None else (0, 0.0)


def test_a_rotation_is_counted_timed_and_its_steps_measured(
        app: App, twin: KeyVaultTwin, db_secret: SecretFactory) -> None:
    before = metric_points("rotator.rotations").get(SUCCEEDED_PG, 0)
    runs_before = histogram("rotator.rotation.duration", SUCCEEDED_PG)
    apply_before = histogram("rotator.step.duration", (("rotator.outcome", "ok"), ("rotator.step", "apply")))
    secret = db_secret()
    app.deliver(near_expiry(twin, secret.name, secret.version))
    assert metric_points("rotator.rotations")[SUCCEEDED_PG] == before + 1
    count, total = histogram("rotator.rotation.duration", SUCCEEDED_PG)
    assert count == runs_before[0] + 1 and 0 < total - runs_before[1] < 60
    attempts = histogram("rotator.rotation.attempts", SUCCEEDED_PG)
    assert attempts[0] >= 1 and attempts[1] >= attempts[0]
    assert histogram("rotator.step.duration", (("rotator.outcome", "ok"), ("rotator.step", "apply")))[0] \
        == apply_before[0] + 1
    units = metric_units()
    assert (units["rotator.rotation.duration"], units["rotator.step.duration"],
            units["rotator.rotations"]) == ("s", "s", "{rotation}")


def test_a_failed_rotation_is_counted_as_failed(app: App, twin: KeyVaultTwin, db_secret: SecretFactory,
                                                postgres: Any) -> None:
    key = (("rotator.outcome", "failed"), ("rotator.target.kind", "postgresql"))
    before = metric_points("rotator.rotations").get(key, 0)
    secret = db_secret()
    postgres.create_role(secret.role, "Changed-Behind-Its-Back-2")
    app.deliver(near_expiry(twin, secret.name, secret.version))
    assert metric_points("rotator.rotations")[key] == before + 1


def test_the_sweep_reports_each_secrets_age_and_the_open_rotations(
        app: App, twin: KeyVaultTwin, kv: SecretClient, db_secret: SecretFactory) -> None:
    soon = db_secret(expires_in_days=400)  # outside the sweep window: nothing is rotated
    kv.set_secret("not-opted-in", "x")
    app.sweep()
    until = metric_points("rotator.secret.days_until_expiry")
    since = metric_points("rotator.secret.days_since_rotation")
    key = (("rotator.secret", soon.name), ("rotator.vault", twin.vault_name))
    assert 399 < until[key] <= 400 and 0 <= since[key] < 0.1
    assert not any(("rotator.secret", "not-opted-in") in k for k in until), "opted-in secrets only"
    assert all({name for name, _ in k} == {"rotator.secret", "rotator.vault"} for k in until)
    open_now = metric_points("rotator.rotations.open")
    assert all(value >= 0 for value in open_now.values())
    assert metric_units()["rotator.secret.days_until_expiry"] == "d"
