"""``python -m demo``: one near-expiry event, carried from Key Vault into Kubernetes, end to end.

What happens, in order (``demo/propagation_story.py``, then ``demo/jenkins_story.py``):

1. an embedded PostgreSQL starts with a login ``app_demo`` and an admin login for the
   rotator; the operator's target rotates it with the alternating-users strategy;
2. the Key Vault twin starts over HTTPS, with a secret ``app-db-credentials`` for that login,
   opted in by its tags, expiring in 20 days, with a 48-hour grace;
3. the Kubernetes twin starts with its ESO, Reloader and rollout controllers: an
   ExternalSecret in ``payments`` copies the login into a Secret that a Deployment reads,
   another reads an unrelated secret; the rotator reaches the cluster through a kubeconfig
   kept in Key Vault, with the rights of ``infra/k8s/rbac.yaml``;
4. the twin raises ``Microsoft.KeyVault.SecretNearExpiry`` and the event is delivered to the
   Functions app's Event Grid function, decoded as the Python worker decodes it: the rotator
   gives ``app_demo_clone`` a new password, stores it as a new version and annotates the
   ExternalSecret that reads the secret, and only that one;
5. ESO re-syncs the Secret; 6. Reloader rolls the Deployment;
7. the timer's sweeper confirms both and retires ``app_demo`` at once, long before the grace
   ends; the rotation's propagation history is printed as a table;
8. an operator rotates again through ``POST /api/secrets/app-db-credentials/rotate``: the
   logins swap back, through the same propagation;
9. on the Jenkins twin, a near-expiry event has the rotator mint a new API token as the
   service user itself; both tokens work during the grace period, after which the timer's
   sweep revokes the old one;
10. ``akv-rotator status`` and ``akv-rotator plan app-db-credentials``, as an operator types
    them, show every opted-in secret and a zero-change preflight of the next rotation.

No password, token or hash of one is ever printed: the proof is that the old credential is
refused and the new one is not.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from demo import jenkins_story, operator_view, propagation_story
from demo.embedded_pg import EmbeddedPostgres, embedded_postgres
from demo.propagation_story import Cluster
from twins.jenkins import JenkinsTwin
from twins.keyvault import KeyVaultTwin

WORK_DIR = Path(os.environ.get("ROTATOR_DEMO_DIR", ".demo"))


def say(text: str = "") -> None:
    print(text, flush=True)


def main() -> int:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    log_path = WORK_DIR / "rotator.log.jsonl"
    log_path.unlink(missing_ok=True)
    logging.getLogger().addHandler(logging.FileHandler(log_path))
    pg_dir = Path(tempfile.mkdtemp(prefix="akv-rotator-demo-pg-"))
    shutil.rmtree(pg_dir)
    say("akv-rotator demo: a Key Vault near-expiry event rotates a PostgreSQL login, ESO and "
        "Reloader carry it into Kubernetes, and the old login is retired once they confirm; "
        "then a Jenkins API token (times UTC)\n")
    with embedded_postgres(pg_dir) as pg, KeyVaultTwin(cert_dir=WORK_DIR / "twin") as twin, \
            propagation_story.kubernetes(twin, WORK_DIR / "k8s") as cluster, \
            JenkinsTwin(cert_dir=WORK_DIR / "jenkins") as jenkins:
        return run(pg, twin, cluster, jenkins, log_path)


def run(pg: EmbeddedPostgres, twin: KeyVaultTwin, cluster: Cluster, jenkins: JenkinsTwin,
        log_path: Path) -> int:
    (WORK_DIR / "journal.db").unlink(missing_ok=True)
    os.environ.update({
        "ROTATOR_VAULTS": f"{twin.vault_name}={twin.url}",
        "ROTATOR_KEYVAULT_AUTH": "static-token",
        "ROTATOR_KEYVAULT_STATIC_TOKEN": "demo-token",
        "ROTATOR_KEYVAULT_CA_BUNDLE": str(twin.ca_path),
        "ROTATOR_VALIDITY_DAYS": "45",
        "ROTATOR_RETRY_INITIAL_SECONDS": "0.2",
        "ROTATOR_JOURNAL": f"sqlite:{(WORK_DIR / 'journal.db').resolve()}",
        # The operator's targets: where credentials may go, and which secrets and logins may
        # bind to each. A secret's tag only names one.
        "ROTATOR_TARGETS": json.dumps({
            propagation_story.TARGET_ID: propagation_story.pg_target(pg, twin.vault_name),
            jenkins_story.TARGET_ID: jenkins_story.jenkins_target(jenkins),
        }),
        **propagation_story.app_settings(twin),
    })
    import function_app  # the real app, imported only now that its settings exist

    def deliver_event(event: dict[str, Any]) -> None:
        function_app.keyvault_events(_as_worker_event(event))

    def deliver(name: str) -> None:
        deliver_event(twin.emit(name, "Microsoft.KeyVault.SecretNearExpiry"))

    propagated = propagation_story.run(pg, twin, cluster, function_app,
                                       deliver=deliver_event, say=say)
    token_ok = jenkins_story.run(jenkins, twin.secret_client(), function_app, deliver, say)
    say("\n10. The operator's view of the twin vault, with the akv-rotator command line")
    viewed = operator_view.run(say, propagation_story.SECRET_NAME)

    steps = _step_lines(log_path)
    say(f"\nStructured logs: {log_path} ({steps} step lines, e.g.)")
    for line in _sample_lines(log_path):
        say("   " + line)
    ok = propagated and token_ok and viewed
    say("\nDemo " + ("succeeded." if ok else "FAILED."))
    return 0 if ok else 1


def _as_worker_event(event: dict[str, Any]) -> func.EventGridEvent:
    """Decode the wire JSON exactly as the Functions Python worker does."""
    decoded: func.EventGridEvent = EventGridEventInConverter.decode(
        meta.Datum(json.dumps(event), "json"), trigger_metadata={})
    return decoded


def _step_lines(log_path: Path) -> int:
    return sum(1 for line in log_path.read_text().splitlines() if '"step"' in line)


def _sample_lines(log_path: Path) -> list[str]:
    picked = []
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        if record.get("step") in ("prepare", "promote") and len(picked) < 2:
            keep = ("event", "step", "outcome", "duration_ms", "rotation_id", "secret")
            picked.append(json.dumps({k: record[k] for k in keep if k in record}))
    return picked


if __name__ == "__main__":
    sys.exit(main())
