"""``python -m demo``: one near-expiry event rotates a real PostgreSQL password, end to end.

What happens, in order:

1. an embedded PostgreSQL starts, with a login ``app_demo`` and a random first password;
2. the Key Vault twin starts over HTTPS, and a secret ``app-db-credentials`` is created for
   that login, opted in by its tags, expiring in 20 days;
3. the twin raises ``Microsoft.KeyVault.SecretNearExpiry`` for the current version and the
   event is delivered to the Functions app's Event Grid function, decoded as the Python worker
   decodes it;
4. the rotator changes the password, proves the new one logs in, and stores it as a new
   Key Vault version with a fresh expiry; the twin's ``SecretNewVersionCreated`` for that
   write comes back to the function and is recognised as the rotator's own;
5. an operator rotates again through ``POST /api/secrets/app-db-credentials/rotate``;
6. on the Jenkins twin, a near-expiry event has the rotator mint a new API token as the
   service user itself; both tokens work during the grace period, after which the timer's
   sweep revokes the old one (``demo/jenkins_story.py``).

No password or token is ever printed: the proof is that the old one is refused and the new
one is not.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from demo import jenkins_story
from demo.embedded_pg import EmbeddedPostgres, embedded_postgres
from rotation.passwords import generate_password
from twins.jenkins import JenkinsTwin
from twins.keyvault import KeyVaultTwin

SECRET_NAME = "app-db-credentials"  # noqa: S105 - a secret's name, not its value
ROLE = "app_demo"
TARGET_ID = "demo-pg"
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
    say("akv-rotator demo: Key Vault near-expiry events rotate a PostgreSQL password and a "
        "Jenkins API token\n")
    with embedded_postgres(pg_dir) as pg, KeyVaultTwin(cert_dir=WORK_DIR / "twin") as twin, \
            JenkinsTwin(cert_dir=WORK_DIR / "jenkins") as jenkins:
        return run(pg, twin, jenkins, log_path)


def run(pg: EmbeddedPostgres, twin: KeyVaultTwin, jenkins: JenkinsTwin, log_path: Path) -> int:
    first_password = generate_password().reveal()
    pg.create_login(ROLE, first_password)
    say(f"1. embedded PostgreSQL is up (socket {pg.socket_dir}); role {ROLE} created; the "
        f"operator declares target {TARGET_ID} for it (login {ROLE}, secret {SECRET_NAME})")

    os.environ.update({
        "ROTATOR_VAULTS": f"{twin.vault_name}={twin.url}",
        "ROTATOR_KEYVAULT_AUTH": "static-token",
        "ROTATOR_KEYVAULT_STATIC_TOKEN": "demo-token",
        "ROTATOR_KEYVAULT_CA_BUNDLE": str(twin.ca_path),
        "ROTATOR_VALIDITY_DAYS": "45",
        "ROTATOR_RETRY_INITIAL_SECONDS": "0.2",
        "ROTATOR_JOURNAL": f"sqlite:{(WORK_DIR / 'journal.db').resolve()}",
        # The operator's target: where credentials may go, and which secrets and logins may
        # bind to it. A secret's tag only names it.
        "ROTATOR_TARGETS": json.dumps({TARGET_ID: {
            "kind": "postgresql", "address": pg.address,
            "logins": [ROLE], "secrets": [SECRET_NAME],
        }, jenkins_story.TARGET_ID: jenkins_story.jenkins_target(jenkins)}),
    })
    (WORK_DIR / "journal.db").unlink(missing_ok=True)
    import function_app  # the real app, imported only now that its settings exist

    client = twin.secret_client()
    original = client.set_secret(
        SECRET_NAME,
        json.dumps({"username": ROLE, "password": first_password}),
        content_type="application/json",
        expires_on=datetime.now(UTC) + timedelta(days=20),
        tags={"rotator-target": TARGET_ID, "rotator-validity-days": "45",
              "owner": "platform-team"},
    )
    old_version = original.properties.version
    say(f"2. Key Vault twin at {twin.url}: secret {SECRET_NAME} version {old_version}, "
        f"expires {_day(original.properties.expires_on)}")

    delivered: list[dict[str, Any]] = []
    twin.subscribe(delivered.append)
    twin.wait_for_deliveries()
    delivered.clear()  # the creation event above is not part of the story
    event = twin.emit(SECRET_NAME, "Microsoft.KeyVault.SecretNearExpiry")
    say(f"3. Event Grid delivers {event['eventType']} for version {event['data']['Version']}")
    function_app.keyvault_events(_as_worker_event(event))

    current = client.get_secret(SECRET_NAME)
    new_version = current.properties.version
    rotated_tags = current.properties.tags or {}
    say(f"4. rotated: version {old_version} -> {new_version}, "
        f"new expiry {_day(current.properties.expires_on)}, "
        f"rotation id {rotated_tags.get('rotator-rotation-id')}")
    new_password = json.loads(current.value or "{}")["password"]
    old_refused = not pg.login_works(ROLE, first_password)
    new_accepted = pg.login_works(ROLE, new_password)
    say(f"   old password refused by PostgreSQL: {_yes(old_refused)}")
    say(f"   new password logs in:               {_yes(new_accepted)}")
    say(f"   tags carried forward: owner={rotated_tags.get('owner')}, "
        f"rotator-target={rotated_tags.get('rotator-target')}")

    twin.wait_for_deliveries()
    own_writes = [e for e in delivered if e["eventType"].endswith("SecretNewVersionCreated")]
    for own in own_writes:
        function_app.keyvault_events(_as_worker_event(own))
    versions = len(list(client.list_properties_of_secret_versions(SECRET_NAME)))
    say(f"   the twin's {len(own_writes)} SecretNewVersionCreated events for its writes (the "
        f"pending credential and the new version) came back to the function and started "
        f"nothing: still {versions} versions")
    history = json.loads(function_app.rotation(func.HttpRequest(
        method="GET", url=f"http://localhost:7071/api/rotations/{rotated_tags.get('rotator-rotation-id')}",
        route_params={"id": rotated_tags.get("rotator-rotation-id", "")}, body=b"",
    )).get_body())
    say(f"   GET /api/rotations/{{id}}: status {history['status']}, steps "
        + " > ".join(f"{s['step']} ({s['durationMs']:.0f} ms)" for s in history["steps"]))

    response = function_app.rotate_secret(func.HttpRequest(
        method="POST", url=f"http://localhost:7071/api/secrets/{SECRET_NAME}/rotate",
        route_params={"name": SECRET_NAME}, headers={"content-type": "application/json"},
        body=json.dumps({"reason": "demo: manual rotation"}).encode(),
    ))
    body = json.loads(response.get_body())
    say(f"5. POST /api/secrets/{SECRET_NAME}/rotate -> {response.status_code}")
    say("   " + json.dumps({k: body.get(k) for k in
                            ("rotationId", "status", "oldVersion", "newVersion", "newExpiry",
                             "durationSeconds")}))
    third_ok = pg.login_works(ROLE, json.loads(client.get_secret(SECRET_NAME).value or "{}")["password"])
    say(f"   newest password logs in: {_yes(third_ok)}")

    def deliver(name: str) -> None:
        function_app.keyvault_events(_as_worker_event(
            twin.emit(name, "Microsoft.KeyVault.SecretNearExpiry")))

    token_ok = jenkins_story.run(jenkins, client, function_app, deliver, say)

    steps = _step_lines(log_path)
    say(f"\nStructured logs: {log_path} ({steps} step lines, e.g.)")
    for line in _sample_lines(log_path):
        say("   " + line)
    ok = old_refused and new_accepted and third_ok and response.status_code == 200 and token_ok
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


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


if __name__ == "__main__":
    sys.exit(main())
