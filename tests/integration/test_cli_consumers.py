"""``akv-rotator consumers`` on a GitOps directory and on a live cluster (the Kubernetes twin),
the latter with exactly the RBAC the project ships (infra/k8s/rbac.yaml)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from rotation.cli import main
from twins.kubernetes import KubernetesTwin
from twins.kubernetes.rbac import Identity, rules_from_manifests

ROOT = Path(__file__).resolve().parents[2]
VAULT = "https://kv-prod.vault.azure.net"

STORES = """
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {name: kv-prod}
spec:
  provider:
    azurekv:
      vaultUrl: https://kv-prod.vault.azure.net/
      authType: WorkloadIdentity
      serviceAccountRef: {name: eso, namespace: external-secrets}
---
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: kv-other, namespace: team-b}
spec:
  provider:
    azurekv:
      vaultUrl: https://kv-other.vault.azure.net
      authType: WorkloadIdentity
      serviceAccountRef: {name: eso}
"""
CONSUMERS = """
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: app-db, namespace: team-a}
spec:
  refreshInterval: 1h
  secretStoreRef: {kind: ClusterSecretStore, name: kv-prod}
  target: {name: app-db-credentials}
  data:
    - secretKey: password
      remoteRef: {key: app-db, property: password}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: app-db-admin, namespace: team-a}
spec:
  secretStoreRef: {kind: ClusterSecretStore, name: kv-prod}
  data:
    - secretKey: password
      remoteRef: {key: app-db-admin}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: pinned, namespace: team-a}
spec:
  secretStoreRef: {kind: ClusterSecretStore, name: kv-prod}
  data:
    - secretKey: password
      remoteRef: {key: secret/app-db, version: 0123456789abcdef0123456789abcdef}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: elsewhere, namespace: team-b}
spec:
  secretStoreRef: {kind: SecretStore, name: kv-other}
  data:
    - secretKey: password
      remoteRef: {key: app-db}
"""
EXPECTED = {
    ("team-a", "app-db"): "annotate",
    ("team-a", "app-db-admin"): "skip",
    ("team-a", "pinned"): "report",
    ("team-b", "elsewhere"): "skip",
}


def consumers(*args: str, vault: str = VAULT) -> tuple[int, str, str]:
    """``akv-rotator consumers`` for secret app-db: its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["consumers", "--vault-url", vault, "--secret", "app-db", *args])
    return code, out.getvalue(), err.getvalue()


def actions(printed: str) -> dict[tuple[str, str], str]:
    return {(v["namespace"], v["name"]): v["action"] for v in json.loads(printed)}


@pytest.fixture
def gitops(tmp_path: Path) -> Path:
    """A repository layout: stores in one file, consumers in another, a Helm template too."""
    (tmp_path / "platform").mkdir()
    (tmp_path / "platform" / "stores.yaml").write_text(STORES)
    (tmp_path / "apps" / "team-a").mkdir(parents=True)
    (tmp_path / "apps" / "team-a" / "external-secrets.yml").write_text(CONSUMERS)
    (tmp_path / "apps" / "chart.yaml").write_text("name: {{ .Values.name }\n  bad: [\n")
    (tmp_path / "README.md").write_text("not a manifest")
    return tmp_path


def test_a_gitops_directory_shows_each_verdict_and_skips_what_is_not_yaml(gitops: Path) -> None:
    code, out, err = consumers("--manifests", str(gitops), "--json")
    assert code == 0, err
    assert actions(out) == EXPECTED
    assert "skipped" in err and "chart.yaml: not YAML" in err


def test_the_table_names_the_reason_for_each(gitops: Path) -> None:
    code, out, _ = consumers("--manifests", str(gitops))
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ACTION", "NAMESPACE", "KIND", "NAME", "SECRET", "REASON"]
    app_db = next(row for row in rows if " app-db " in row)
    assert app_db.startswith("annotate") and "app-db-credentials" in app_db
    pinned = next(row for row in rows if " pinned " in row)
    assert "pinned to a version" in pinned


def test_bad_input_is_exit_2_with_what_was_wrong(gitops: Path) -> None:
    code, out, err = consumers("--manifests", str(gitops), "--tag", "novalue")
    assert (code, out) == (2, "") and "--tag 'novalue' is not KEY=VALUE" in err
    code, _, err = consumers("--manifests", "/no/such/dir")
    assert code == 2 and "/no/such/dir is not a directory" in err
    code, _, err = consumers("--manifests", str(gitops), vault="kv-prod")
    assert code == 2 and "akv-rotator consumers: 'kv-prod' is not an https:// URL" in err


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[KubernetesTwin, str]]:
    """The twin holding the same objects, and a token with exactly infra/k8s/rbac.yaml's rules."""
    rules = rules_from_manifests(list(yaml.safe_load_all((ROOT / "infra/k8s/rbac.yaml").read_text())))
    token = "rotator-sa-token"
    identity = Identity("system:serviceaccount:akv-rotator:akv-rotator", rules)
    with KubernetesTwin(cert_dir=tmp_path / "k8s", tokens={token: identity}) as twin:
        for document in yaml.safe_load_all(STORES + "---" + CONSUMERS):
            twin.put(document)
        yield twin, token


def test_a_live_cluster_with_the_projects_least_privilege_rbac(cluster: tuple[KubernetesTwin, str]) -> None:
    twin, token = cluster
    code, out, err = consumers("--kubeconfig", str(twin.kubeconfig(token)), "--json")
    assert code == 0, err
    assert actions(out) == EXPECTED
    requests = list(twin.requests)
    assert requests and all(r.status in (200, 403) for r in requests), requests
    assert not any("secrets" in r.path.split("?")[0].split("/") for r in requests), "no Secret read"
    assert {r.verb for r in requests} <= {"list", "get"}, "reading changes nothing"


def test_a_token_without_the_role_is_told_so(cluster: tuple[KubernetesTwin, str], tmp_path: Path) -> None:
    twin, _ = cluster
    config = json.loads(twin.kubeconfig().read_text())
    config["users"][0]["user"]["token"] = "not-a-token"
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(json.dumps(config))
    code, _, err = consumers("--kubeconfig", str(bad))
    assert code == 2 and "HTTP 401" in err


def test_the_console_script_runs(gitops: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "rotation.cli", "consumers", "--vault-url", VAULT,
                           "--secret", "app-db", "--manifests", str(gitops), "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert actions(done.stdout) == EXPECTED

