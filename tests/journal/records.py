"""Records and clocks for the journal tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from rotation.ids import RotationId, SecretName, VaultName, VersionId
from rotation.journal import RotationRecord, StepTiming
from rotation.propagation.progress import ConsumerProgress, Propagation, WorkloadProgress

NOW = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
TTL = timedelta(minutes=5)
VAULT = VaultName("kv-prod")
SECRET = SecretName("app-db")
V1 = VersionId("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
V2 = VersionId("1f1e2d3c4b5a69788796a5b4c3d2e1f1")
CET = timezone(timedelta(hours=1), "CET")


def new_id() -> RotationId:
    return RotationId(uuid.uuid4().hex)


def record(
    *, version: str = V1, secret: str = SECRET, vault: str = VAULT, rotation_id: str | None = None,
    created_at: datetime = NOW,
) -> RotationRecord:
    """A freshly started rotation: only what a caller sets when it begins one."""
    return RotationRecord(
        rotation_id=RotationId(rotation_id or new_id()), vault=VaultName(vault),
        secret=SecretName(secret), from_version=VersionId(version), trigger_source="event",
        trigger_reference="evt-1", trigger_event_type="Microsoft.KeyVault.SecretNearExpiry",
        created_at=created_at, updated_at=created_at,
    )


def full_record() -> RotationRecord:
    """A record with every field set away from its default, datetimes in a non-UTC zone."""
    at = datetime(2026, 11, 28, 13, 0, 0, 1, tzinfo=CET)
    return RotationRecord(
        rotation_id=new_id(), vault=VAULT, secret=SecretName("App-DB"), from_version=V2,
        trigger_source="http", trigger_reference="alice@example.com", trigger_event_type=None,
        created_at=at, updated_at=at + timedelta(seconds=1), status="running", step="verified",
        attempts=3, last_error="TransientError: throttled (429) — ünïcode",
        next_attempt_at=at + timedelta(minutes=2), lease_owner="worker-7",
        lease_until=at + timedelta(minutes=5), pending_secret="app-db--pending",
        pending_version=VersionId("aa" * 16), new_version=VersionId("bb" * 16),
        new_expiry=datetime(2027, 2, 26, 0, 0, tzinfo=UTC), previous_username="app_a",
        retire_after=at + timedelta(hours=24), finished_at=None,
        steps=(
            StepTiming("started", at, 0.0, 1),
            StepTiming("prepared", at + timedelta(milliseconds=250), 250.5, 1),
            StepTiming("applied", at + timedelta(seconds=2), 1749.25, 2),
            StepTiming("verified", at + timedelta(seconds=3), 12.0, 3),
        ),
        purpose="propagation",
        propagation=propagation(consumers=2, at=at),
        published="propagated,retired",
    )


def propagation(*, consumers: int, at: datetime = NOW) -> Propagation:
    """Progress of ``consumers`` ExternalSecrets, each with a workload, every field set."""
    return Propagation(
        planned=("rke2-prod", "in-cluster"), untracked=3, errors=("in-cluster: HTTP 503 — ünï",),
        failed_checks=2, warning="retired after the maximum wait",
        consumers=tuple(ConsumerProgress(
            cluster="rke2-prod", namespace=f"team-{n}", kind="ExternalSecret", name=f"api-db-{n}",
            api_version="external-secrets.io/v1", action="annotate-parent",
            reason="annotate: data[0].remoteRef.key 'app-db' through ClusterSecretStore/kv",
            target_secret=f"api-db-{n}", parent="shared-db", synced_version_before="3-abc",
            refresh_time_before="2026-11-28T11:00:00Z", state="synced", detail="waiting",
            patched_at=at + timedelta(seconds=n), synced_at=at + timedelta(seconds=n + 1),
            confirmed_at=None,
            workloads=(WorkloadProgress(kind="Deployment", name=f"api-{n}", generation_before=4,
                                        marker_before="STAKATER|{}", state="failed",
                                        reason="the rollout exceeded its progress deadline",
                                        rolled_out_at=at),),
        ) for n in range(consumers)))
