"""The demo's main story: a near-expiry event, carried into Kubernetes, then retirement (issue #10).

event → new credential → ExternalSecrets annotated → Secret updated → Deployment rolled →
old credential retired.

The PostgreSQL target uses the **alternating-users** strategy (logins ``app_demo`` and
``app_demo_clone``) with a 48-hour grace, so the previous login keeps working until it is
retired. On the Kubernetes twin, running the twin's External Secrets Operator, Stakater
Reloader and rollouts, namespace ``payments`` holds:

- ExternalSecret ``app-db``: the database secret's ``username`` and ``password`` into Secret
  ``app-db``, read with ``envFrom`` by Deployment ``api`` (``reloader.stakater.com/auto``);
- ExternalSecret ``ledger-api``: an unrelated secret into Secret ``ledger-api``, read by
  Deployment ``ledger``. The rotation must touch neither.

The rotator reaches the cluster as the Functions app does in production: with a kubeconfig
kept in Key Vault (``ROTATOR_KUBECONFIG_SECRET``; CA inline, a service-account token) and
exactly the rights of ``infra/k8s/rbac.yaml``, which grant no access to Secrets. The timer's
sweeper confirms the sync and the rollout, and only then retires the previous login: seconds
after the rotation, not 48 hours.

Nothing secret is printed, nor a hash of one: the proofs are logins PostgreSQL accepts or
refuses, and comparisons whose result only is shown.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import azure.functions as func
import yaml
from azure.functions.timer import TimerRequest
from azure.keyvault.secrets import SecretClient

from demo.embedded_pg import EmbeddedPostgres
from rotation.passwords import generate_password
from twins.keyvault import KeyVaultTwin
from twins.kubernetes import Identity, KubernetesTwin, rules_from_manifests
from twins.kubernetes.controllers import Controllers, env_var_name

SECRET_NAME = "app-db-credentials"  # noqa: S105 - a secret's name, not its value
ADMIN_SECRET = "pg-admin"  # noqa: S105
UNRELATED_SECRET = "ledger-api-key"  # noqa: S105
KUBECONFIG_SECRET = "kubeconfig-demo"  # noqa: S105
ROLE, CLONE, ADMIN_ROLE = "app_demo", "app_demo_clone", "rotator_admin"
TARGET_ID = "demo-pg"
GRACE_HOURS = 48
NAMESPACE = "payments"
SERVICE_ACCOUNT = "system:serviceaccount:akv-rotator:akv-rotator"
RBAC = Path(__file__).resolve().parents[1] / "infra" / "k8s" / "rbac.yaml"
ROLLOUT_SECONDS = 0.8  # long enough to see a rollout in progress
POLL_SECONDS = 1  # ROTATOR_PROPAGATION_POLL_SECONDS: when the sweeper may check again
FORCE_SYNC = "external-secrets.io/force-sync"
ES_API, APPS_API = "external-secrets.io/v1", "apps/v1"

T = TypeVar("T")
Say = Callable[[str], None]


@dataclass(frozen=True)
class Rollout:
    """A Deployment's generation, whether its rollout is done, and how far it got."""

    generation: int
    done: bool
    progress: str


@dataclass
class Cluster:
    """The Kubernetes twin with its controllers, and the rotator's service-account token."""

    twin: KubernetesTwin
    controllers: Controllers
    token: str = field(repr=False)

    def generation(self, deployment: str) -> int:
        return int(self._deployment(deployment)["metadata"]["generation"])

    def secret_login(self, name: str) -> tuple[str, str]:
        """The username and password ESO wrote into a Secret (read by the demo, never printed)."""
        found = self.twin.get("v1", "Secret", NAMESPACE, name) or {}
        data = {k: base64.b64decode(v).decode() for k, v in found.get("data", {}).items()}
        return data.get("username", ""), data.get("password", "")

    def rollout(self, deployment: str) -> Rollout:
        """The Deployment's generation and whether kubectl's rollout rules call it done."""
        obj = self._deployment(deployment)
        spec, status = obj["spec"], obj.get("status", {})
        wanted, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
        done = (status.get("observedGeneration", 0) >= obj["metadata"]["generation"]
                and updated == wanted and status.get("replicas", 0) == updated
                and status.get("availableReplicas", 0) == updated)
        return Rollout(obj["metadata"]["generation"], done, f"{updated}/{wanted} replicas updated")

    def reloader_marker(self, deployment: str, secret: str) -> bool:
        """Whether Reloader's env-var marker for ``secret`` is on the pod template (value unread)."""
        containers = self._deployment(deployment)["spec"]["template"]["spec"]["containers"]
        return any(e.get("name") == env_var_name(secret) for c in containers for e in c.get("env", []))

    def _deployment(self, name: str) -> dict[str, Any]:
        found = self.twin.get(APPS_API, "Deployment", NAMESPACE, name)
        if found is None:
            raise LookupError(f"no Deployment {NAMESPACE}/{name}")
        return found


@contextmanager
def kubernetes(keyvault: KeyVaultTwin, cert_dir: Path) -> Iterator[Cluster]:
    """The Kubernetes twin over HTTPS, ESO reading ``keyvault``, Reloader and rollouts."""
    token = secrets.token_urlsafe(32)
    rules = rules_from_manifests(list(yaml.safe_load_all(RBAC.read_text())))
    identity = Identity(SERVICE_ACCOUNT, rules)
    # crd_dir=None, as in the tests: ESO's CRD files are not part of the checkout.
    with KubernetesTwin(cert_dir=cert_dir, tokens={token: identity}, crd_dir=None) as twin, \
            Controllers(twin, keyvault=keyvault, rollout_seconds=ROLLOUT_SECONDS) as controllers:
        yield Cluster(twin, controllers, token)


def pg_target(pg: EmbeddedPostgres, vault: str) -> dict[str, Any]:
    """The operator's declaration: alternating logins, the admin secret that changes them."""
    return {"kind": "postgresql", "address": pg.address, "adminSecret": f"{vault}/{ADMIN_SECRET}",
            "strategies": ["alternating-users"], "logins": [ROLE, CLONE],
            "secrets": [SECRET_NAME]}


def app_settings(vault: KeyVaultTwin) -> dict[str, str]:
    """Propagation's app settings: where the kubeconfig is, how soon to check again."""
    return {"ROTATOR_KUBECONFIG_SECRET": f"{vault.vault_name}/{KUBECONFIG_SECRET}",
            "ROTATOR_PROPAGATION_POLL_SECONDS": str(POLL_SECONDS)}


def run(pg: EmbeddedPostgres, vault: KeyVaultTwin, cluster: Cluster, app: ModuleType, *,
        deliver: Callable[[dict[str, Any]], None], say: Say) -> bool:
    """Tell the story; True when every claim it printed held."""
    client = vault.secret_client()
    first_password = _set_up_logins(pg, client, say)
    old_version = _set_up_secret(client, vault, first_password, say)
    _set_up_cluster(cluster, client, vault, say)
    story = _Story(pg, client, cluster, app, say)
    login_ok = pg.login_works(*cluster.secret_login("app-db"))
    say(f"{'':15}ESO synced both; Secret {NAMESPACE}/app-db logs in as "
        f"{cluster.secret_login('app-db')[0]}: {_yes(login_ok)}")
    rotation_id, annotated = story.near_expiry(vault, deliver, old_version)
    checks = (login_ok, annotated, story.secret_updated(first_password), story.deployment_rolled(),
              story.retired(rotation_id, first_password), story.rotate_by_hand())
    return all(checks)


@dataclass
class _Story:
    """The steps from the event on, each printing what it saw; True when its claims held."""

    pg: EmbeddedPostgres
    client: SecretClient
    cluster: Cluster
    app: ModuleType
    say: Say
    before: dict[str, int] = field(default_factory=dict)  # Deployment generations

    def __post_init__(self) -> None:
        self.before = {name: self.cluster.generation(name) for name in ("api", "ledger")}

    @property
    def login(self) -> dict[str, str]:
        """The login Key Vault's current version holds (used, never printed)."""
        return dict(json.loads(self.client.get_secret(SECRET_NAME).value or "{}"))

    def near_expiry(self, vault: KeyVaultTwin, deliver: Callable[[dict[str, Any]], None],
                    old_version: str) -> tuple[str, bool]:
        """Step 4: the event, the new credential, the ExternalSecrets annotated or not."""
        delivered: list[dict[str, Any]] = []
        vault.subscribe(delivered.append)
        vault.wait_for_deliveries()
        delivered.clear()  # the set-up's own events are not part of the story
        event = vault.emit(SECRET_NAME, "Microsoft.KeyVault.SecretNearExpiry")
        self.say(f"{_now()} 4. Event Grid delivers {event['eventType']} for version "
                 f"{event['data']['Version']}")
        deliver(event)
        current = self.client.get_secret(SECRET_NAME).properties
        rotation_id = (current.tags or {}).get("rotator-rotation-id", "")
        self.say(f"{'':15}new credential: version {old_version} -> {current.version}, login "
                 f"{ROLE} -> {self.login['username']}, expires {_day(current.expires_on)}")
        self.say(f"{'':15}rotation {rotation_id}: {_history(self.app, rotation_id)['status']} "
                 f"(retirement waits for the consumers)")
        annotated = _report_annotations(self.cluster, rotation_id, self.say)
        vault.wait_for_deliveries()
        own = [e for e in delivered if e["eventType"].endswith("SecretNewVersionCreated")]
        for own_write in own:
            deliver(own_write)
        self.say(f"{'':15}the twin's {len(own)} SecretNewVersionCreated events for the "
                 f"rotator's own writes came back to the function and started nothing")
        return rotation_id, annotated

    def secret_updated(self, first_password: str) -> bool:
        """Step 5: ESO wrote the new login into the Secret; the previous one still works."""
        login = self.login
        _wait_for(lambda: self.cluster.secret_login("app-db")[0] == login["username"] or None,
                  "ESO to re-sync Secret app-db")
        in_secret = self.cluster.secret_login("app-db")
        same = in_secret == (login["username"], login["password"])
        works = self.pg.login_works(*in_secret)
        kept = self.pg.login_works(ROLE, first_password)
        self.say(f"{_now()} 5. ESO re-synced Secret {NAMESPACE}/app-db: it holds login "
                 f"{in_secret[0]}, equal to Key Vault's new version: {_yes(same)}, logs in to "
                 f"PostgreSQL: {_yes(works)}")
        self.say(f"{'':15}the previous login {ROLE} still logs in, waiting to be retired: "
                 f"{_yes(kept)}")
        return same and works and kept

    def deployment_rolled(self) -> bool:
        """Step 6: Reloader restarted the Deployment that reads the Secret, and only that one."""
        def restarted() -> Rollout | None:
            now = self.cluster.rollout("api")
            return now if now.generation > self.before["api"] else None

        def rolled_out() -> Rollout | None:
            now = self.cluster.rollout("api")
            return now if now.done else None

        rolling = _wait_for(restarted, "Reloader to restart Deployment api")
        marker = self.cluster.reloader_marker("api", "app-db")
        self.say(f"{_now()} 6. Reloader restarted Deployment {NAMESPACE}/api: generation "
                 f"{self.before['api']} -> {rolling.generation} ({env_var_name('app-db')} on "
                 f"the pod template: {_yes(marker)}); rolling, {rolling.progress}")
        rolled = _wait_for(rolled_out, "the rollout of Deployment api")
        self.say(f"{_now()}    rollout complete (kubectl's rules): {rolled.progress}, "
                 f"all available")
        ledger = self.cluster.generation("ledger")
        self.say(f"{'':15}Deployment {NAMESPACE}/ledger (unrelated Secret) not restarted: "
                 f"generation {ledger}")
        return marker and rolled.done and ledger == self.before["ledger"]

    def retired(self, rotation_id: str, first_password: str) -> bool:
        """Step 7: the sweeper confirms, the previous login is retired; the history."""
        sweeps = _sweep_until_done(self.app, self.cluster, rotation_id)
        record = _history(self.app, rotation_id)
        login = self.login
        refused = not self.pg.login_works(ROLE, first_password)
        works = self.pg.login_works(login["username"], login["password"])
        self.say(f"{_now()} 7. the sweeper (timer) confirmed {NAMESPACE}/ExternalSecret/app-db "
                 f"(synced, Deployment api rolled out) after {sweeps} sweep(s) and retired login "
                 f"{ROLE} at once, not after the {GRACE_HOURS}-hour grace: rotation "
                 f"{record['status']}")
        self.say(f"{'':15}old login {ROLE} refused by PostgreSQL: {_yes(refused)}")
        self.say(f"{'':15}new login {login['username']} logs in:       {_yes(works)}")
        _print_history(record, self.say)
        no_secret_read = _report_cluster_requests(self.cluster, self.say)
        return record["status"] == "succeeded" and refused and works and no_secret_read

    def rotate_by_hand(self) -> bool:
        """Step 8: an operator's ``POST …/rotate``; the logins swap back the same way."""
        previous = self.login
        response = self.app.rotate_secret(func.HttpRequest(
            method="POST", url=f"http://localhost:7071/api/secrets/{SECRET_NAME}/rotate",
            route_params={"name": SECRET_NAME}, headers={"content-type": "application/json"},
            body=json.dumps({"reason": "demo: manual rotation"}).encode()))
        body = json.loads(response.get_body())
        self.say(f"{_now()} 8. POST /api/secrets/{SECRET_NAME}/rotate -> {response.status_code}")
        self.say(f"{'':15}" + json.dumps({k: body.get(k) for k in (
            "rotationId", "status", "oldVersion", "newVersion", "newExpiry", "durationSeconds")}))
        rotation_id = body.get("rotationId", "")
        sweeps = _sweep_until_done(self.app, self.cluster, rotation_id)
        current, record = self.login, _history(self.app, rotation_id)
        states = [c["state"] for c in record["propagation"]["consumers"]]
        generation = self.cluster.generation("api")
        synced = self.cluster.secret_login("app-db") == (current["username"], current["password"])
        refused = not self.pg.login_works(previous["username"], previous["password"])
        works = self.pg.login_works(current["username"], current["password"])
        self.say(f"{_now()}    login {previous['username']} -> {current['username']}; after "
                 f"{sweeps} sweep(s): consumer app-db {', '.join(states)}, Secret synced "
                 f"{_yes(synced)}, Deployment api generation {generation}, rotation "
                 f"{record['status']}")
        self.say(f"{'':15}{previous['username']} refused: {_yes(refused)}; "
                 f"{current['username']} logs in: {_yes(works)}")
        return (response.status_code == 200 and record["status"] == "succeeded"
                and states == ["confirmed"] and synced and generation == self.before["api"] + 2
                and refused and works)


# -- the set-up ----------------------------------------------------------------------------


def _set_up_logins(pg: EmbeddedPostgres, client: SecretClient, say: Say) -> str:
    first_password = generate_password().reveal()
    pg.create_login(ROLE, first_password)
    admin_password = generate_password().reveal()
    pg.create_admin(ADMIN_ROLE, admin_password, of=ROLE)
    client.set_secret(ADMIN_SECRET, json.dumps({"username": ADMIN_ROLE, "password": admin_password}),
                      content_type="application/json")
    say(f"{_now()} 1. embedded PostgreSQL is up (socket {pg.socket_dir}): login {ROLE}, and "
        f"{ADMIN_ROLE} (CREATEROLE, admin of {ROLE}) kept as secret {ADMIN_SECRET}")
    say(f"{'':15}the operator declares target {TARGET_ID}: strategy alternating-users, logins "
        f"{ROLE} and {CLONE}, secret {SECRET_NAME}")
    return first_password


def _set_up_secret(client: SecretClient, vault: KeyVaultTwin, password: str, say: Say) -> str:
    original = client.set_secret(
        SECRET_NAME, json.dumps({"username": ROLE, "password": password}),
        content_type="application/json", expires_on=datetime.now(UTC) + timedelta(days=20),
        tags={"rotator-target": TARGET_ID, "rotator-validity-days": "45",
              "rotator-grace-hours": str(GRACE_HOURS), "owner": "platform-team"})
    version = original.properties.version or ""
    say(f"{_now()} 2. Key Vault twin at {vault.url}: secret {SECRET_NAME} version {version} "
        f"(login {ROLE}), expires {_day(original.properties.expires_on)}, grace {GRACE_HOURS} h")
    return version


def _set_up_cluster(cluster: Cluster, client: SecretClient, vault: KeyVaultTwin, say: Say) -> None:
    client.set_secret(KUBECONFIG_SECRET, _inline_kubeconfig(cluster))
    client.set_secret(UNRELATED_SECRET, generate_password().reveal())
    twin = cluster.twin
    twin.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    twin.put({"apiVersion": ES_API, "kind": "ClusterSecretStore", "metadata": {"name": "kv"},
              "spec": {"provider": {"azurekv": {"vaultUrl": vault.url,
                                                "authType": "WorkloadIdentity"}}}})
    twin.put(_external_secret("app-db", [("username", SECRET_NAME, "username"),
                                         ("password", SECRET_NAME, "password")]))
    twin.put(_deployment("api", "app-db"))
    twin.put(_external_secret("ledger-api", [("api-key", UNRELATED_SECRET, None)]))
    twin.put(_deployment("ledger", "ledger-api"))
    cluster.controllers.settle()
    say(f"{_now()} 3. Kubernetes twin at {twin.url} runs ESO, Reloader and rollouts; the "
        f"rotator reaches it with kubeconfig secret {KUBECONFIG_SECRET} (CA inline, a token "
        f"for {SERVICE_ACCOUNT}, the rights of infra/k8s/rbac.yaml)")
    say(f"{'':15}ClusterSecretStore kv reads {vault.url}")
    say(f"{'':15}{NAMESPACE}/ExternalSecret app-db:     {SECRET_NAME} (username, password) "
        f"-> Secret app-db -> Deployment api (envFrom, reloader.stakater.com/auto)")
    say(f"{'':15}{NAMESPACE}/ExternalSecret ledger-api: {UNRELATED_SECRET} -> Secret ledger-api "
        f"-> Deployment ledger")


def _inline_kubeconfig(cluster: Cluster) -> str:
    """The twin's kubeconfig with its CA inline, as one kept in Key Vault must be."""
    config = yaml.safe_load(cluster.twin.kubeconfig(cluster.token).read_text())
    for entry in config["clusters"]:
        path = entry["cluster"].pop("certificate-authority")
        entry["cluster"]["certificate-authority-data"] = base64.b64encode(
            Path(path).read_bytes()).decode()
    text: str = yaml.safe_dump(config)
    return text


def _external_secret(name: str, data: list[tuple[str, str, str | None]]) -> dict[str, Any]:
    """An ExternalSecret of the ``kv`` store: (Secret key, Key Vault secret, JSON property)."""
    def ref(key: str, prop: str | None) -> dict[str, str]:
        return {"key": key, "property": prop} if prop else {"key": key}

    return {"apiVersion": ES_API, "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"secretStoreRef": {"name": "kv", "kind": "ClusterSecretStore"},
                     "refreshInterval": "1h", "target": {"name": name},
                     "data": [{"secretKey": k, "remoteRef": ref(key, prop)}
                              for k, key, prop in data]}}


def _deployment(name: str, secret: str) -> dict[str, Any]:
    return {"apiVersion": APPS_API, "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{
                                      "name": "app", "image": f"registry.example/{name}:1",
                                      "envFrom": [{"secretRef": {"name": secret}}]}]}}}}


# -- what the story shows ------------------------------------------------------------------


def _report_annotations(cluster: Cluster, rotation_id: str, say: Say) -> bool:
    """Which ExternalSecrets carry the force-sync annotation; True when exactly app-db does."""
    marked = {}
    for es in cluster.twin.objects("ExternalSecret"):
        name = es["metadata"]["name"]
        value = (es["metadata"].get("annotations") or {}).get(FORCE_SYNC)
        marked[name] = value
        where = f"{es['metadata']['namespace']}/ExternalSecret/{name}"
        if value:
            same = " (the rotation id)" if value == rotation_id else ""
            say(f"{'':15}annotated:     {where} {FORCE_SYNC}={value}{same}")
        else:
            reads = sorted({d["remoteRef"]["key"] for d in es["spec"].get("data", [])})
            say(f"{'':15}not annotated: {where} (reads {', '.join(reads)})")
    return marked == {"app-db": rotation_id, "ledger-api": None}


def _sweep_until_done(app: ModuleType, cluster: Cluster, rotation_id: str,
                      limit: float = 30.0) -> int:
    """Run the sweeper as its timer would, every poll interval, until the rotation closes."""
    give_up, sweeps = time.monotonic() + limit, 0
    while _history(app, rotation_id)["status"] != "succeeded" and time.monotonic() < give_up:
        cluster.controllers.settle()
        time.sleep(POLL_SECONDS)
        app.sweeper(TimerRequest(past_due=False))
        sweeps += 1
    return sweeps


def _print_history(record: dict[str, Any], say: Say) -> None:
    """``propagation.consumers`` of ``GET /api/rotations/{id}`` as a small table (UTC)."""
    say(f"{'':15}GET /api/rotations/{{id}}: status {record['status']}, propagation.consumers:")
    rows = [("namespace", "kind", "name", "verdict", "state", "patchedAt", "syncedAt",
             "rolloutDoneAt", "workloads")]
    for c in record["propagation"]["consumers"]:
        workloads = ", ".join(f"{w['kind']}/{w['name']} {w['state']}" for w in c["workloads"])
        rows.append((c["namespace"], c["kind"], c["name"], c["verdict"], c["state"],
                     _clock(c["patchedAt"]), _clock(c["syncedAt"]), _clock(c["rolloutDoneAt"]),
                     workloads or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        say(f"{'':17}" + "  ".join(cells).rstrip())
    say(f"{'':15}steps: " + " > ".join(f"{s['step']} ({s['durationMs']:.0f} ms)"
                                       for s in record["steps"]))


def _report_cluster_requests(cluster: Cluster, say: Say) -> bool:
    """What the rotator asked the API server; True when it never touched a Secret."""
    ours = [r for r in cluster.twin.requests.snapshot() if r.user == SERVICE_ACCOUNT]
    patched = sorted({r.path.rsplit("/", 1)[-1] for r in ours if r.verb == "patch"})
    secrets_touched = sum(1 for r in ours if "secrets" in r.path.split("/"))
    say(f"{'':15}the rotator's {len(ours)} requests to the cluster patched ExternalSecret "
        f"{', '.join(patched)} only, and read {secrets_touched} Secrets")
    return secrets_touched == 0


# -- small helpers -------------------------------------------------------------------------


def _history(app: ModuleType, rotation_id: str) -> dict[str, Any]:
    response = app.rotation(func.HttpRequest(
        method="GET", url=f"http://localhost:7071/api/rotations/{rotation_id}",
        route_params={"id": rotation_id}, body=b""))
    history: dict[str, Any] = json.loads(response.get_body())
    return history


def _wait_for(probe: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    give_up = time.monotonic() + timeout
    while (found := probe()) is None:
        if time.monotonic() > give_up:
            raise TimeoutError(f"the demo waited {timeout:g} s for {what}")
        time.sleep(0.05)
    return found


def _now() -> str:
    """A step's wall-clock stamp, UTC like the rotation's history."""
    return datetime.now(UTC).strftime("[%H:%M:%S.%f")[:-3] + "]"


def _clock(iso: str | None) -> str:
    return iso[11:19] if iso else "-"


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"
