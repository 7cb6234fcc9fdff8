"""``make demo`` runs: the README's first command, on the twins and an embedded PostgreSQL.

It tells the propagation story of issue #10 in order, every claim it prints holds, and it
prints no secret value.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JENKINS_TOKEN = re.compile(r"\b11[0-9a-f]{32}\b")
PASSWORD_FIELD = re.compile(r'"(password|token)"\s*:\s*"')
# A url-safe preset password of the default length: 40 characters, every class present.
GENERATED = re.compile(r"(?<![\w.~-])[A-Za-z][\w.~-]{39}(?![\w.~-])")


def generated_passwords(text: str) -> list[str]:
    return [m for m in GENERATED.findall(text) if any(c.isupper() for c in m)
            and any(c.islower() for c in m) and any(c.isdigit() for c in m)
            and any(c in "-._~" for c in m)]


def test_the_demo_tells_the_propagation_story_then_jenkins_and_prints_no_secret(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env["ROTATOR_DEMO_DIR"] = str(tmp_path / "demo")
    done = subprocess.run([sys.executable, "-m", "demo"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240, check=False)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert out.rstrip().endswith("Demo succeeded.")
    assert not re.search(r"\bNO\b", out), out  # every claim the demo printed held
    steps = [out.index(f"] {n}. ") for n in range(1, 9)] + [out.index("\n9. Jenkins twin"),
                                                            out.index("\n10. The operator's view")]
    assert steps == sorted(steps), "the story is told in order"
    # event -> new credential -> ExternalSecrets annotated -> Secret updated -> Deployment
    # rolled -> confirmed by the sweeper -> old credential retired
    assert "login app_demo -> app_demo_clone" in out
    rotation_id = re.search(r"rotation ([0-9a-f]{32}): awaiting-propagation", out)
    assert rotation_id, out
    assert (f"annotated:     payments/ExternalSecret/app-db external-secrets.io/force-sync="
            f"{rotation_id[1]} (the rotation id)") in out
    assert "not annotated: payments/ExternalSecret/ledger-api (reads ledger-api-key)" in out
    assert ("5. ESO re-synced Secret payments/app-db: it holds login app_demo_clone, equal to "
            "Key Vault's new version: yes, logs in to PostgreSQL: yes") in out
    assert "the previous login app_demo still logs in, waiting to be retired: yes" in out
    assert "6. Reloader restarted Deployment payments/api: generation 1 -> 2" in out
    assert "rollout complete (kubectl's rules): 2/2 replicas updated, all available" in out
    assert "Deployment payments/ledger (unrelated Secret) not restarted: generation 1" in out
    assert re.search(r"7\. the sweeper \(timer\) confirmed payments/ExternalSecret/app-db .* "
                     r"retired login app_demo at once, not after the 48-hour grace: rotation "
                     r"succeeded", out)
    assert "old login app_demo refused by PostgreSQL: yes" in out
    assert re.search(r"new login app_demo_clone logs in:\s+yes", out)
    assert re.search(r"payments\s+ExternalSecret\s+app-db\s+annotate\s+confirmed"
                     r"(\s+\d\d:\d\d:\d\d){3}\s+Deployment/api rolled-out", out), out
    assert "patched ExternalSecret app-db only, and read 0 Secrets" in out
    assert "8. POST /api/secrets/app-db-credentials/rotate -> 200" in out
    assert "app_demo_clone refused: yes; app_demo logs in: yes" in out
    assert "during the grace period both tokens work: yes" in out
    assert "old refused yes, new works yes, tokens left 1" in out
    # 10: the CLI, as an operator runs it, on the twin vault: both exit 0
    view = out[out.index("\n10. The operator's view"):]
    assert view.index("$ akv-rotator status") < view.index("$ akv-rotator plan app-db-credentials")
    assert view.count("(exit code 0)") == 2, view
    assert re.search(r"kv-twin\s+app-db-credentials\s+demo-pg\s+postgresql\s+alternating-users"
                     r"\s+\S+\s+\S+\s+\S+\s+succeeded", view), view
    assert re.search(r"kv-twin\s+jenkins-svc-ci-token\s+demo-jenkins\s+jenkins\s+overlap", view)
    assert "target demo-pg (alternating-users)  verdict ok" in view
    for check in ("admin-login", "current-credential", "next-login", "keyvault-write"):
        assert re.search(rf"^{check}\s+pass\s", view, flags=re.M), check
    assert re.search(r"^consumers\s+pass\s+kubeconfig-demo/payments/ExternalSecret/app-db", view, re.M)
    assert re.search(r"^reloader\s+pass\s+.*restarts Deployment/api", view, flags=re.M)
    logs = (tmp_path / "demo" / "rotator.log.jsonl").read_text()
    for text in (out, done.stderr, logs):
        assert not JENKINS_TOKEN.search(text)
        assert not PASSWORD_FIELD.search(text)
        assert not generated_passwords(text)
