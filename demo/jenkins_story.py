"""The demo's second story: a Jenkins API token rotated on the Jenkins twin with an overlap.

The service user's first token is stored in Key Vault; a near-expiry event makes the rotator
mint a new token as that user, store it as a new version, and keep the old one working for
its grace period; the timer's sweep then revokes it. No token is printed: the proof is
which one Jenkins accepts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from azure.functions.timer import TimerRequest
from azure.keyvault.secrets import SecretClient

from twins.jenkins import JenkinsTwin

SECRET_NAME = "jenkins-svc-ci-token"  # noqa: S105 - a secret's name, not its value
USER = "svc-ci"
TARGET_ID = "demo-jenkins"
GRACE_HOURS = 0.0005  # under two seconds, so the demo can show the overlap end


def jenkins_target(jenkins: JenkinsTwin) -> dict[str, Any]:
    """The operator's declaration: Jenkins' root URL, its CA, who may bind."""
    return {"kind": "jenkins", "address": jenkins.url,
            "tls": {"mode": "verify-full", "caBundle": str(jenkins.ca_path)},
            "logins": [USER], "secrets": [SECRET_NAME]}


def run(jenkins: JenkinsTwin, client: SecretClient, app: ModuleType,
        deliver: Callable[[str], None], say: Callable[[str], None]) -> bool:
    """Tell the story; True when every claim it prints held."""
    jenkins.add_user(USER)
    first = jenkins.add_token(USER, "onboarded by hand")
    uuid = jenkins.tokens(USER)[0].uuid
    client.set_secret(SECRET_NAME, json.dumps({"username": USER, "token": first, "tokenUuid": uuid}),
                      content_type="application/json",
                      expires_on=datetime.now(UTC) + timedelta(days=20),
                      tags={"rotator-target": TARGET_ID, "rotator-grace-hours": str(GRACE_HOURS)})
    say(f"\n9. Jenkins twin at {jenkins.url}: user {USER} with one API token, stored as "
        f"{SECRET_NAME} (value: username, token, tokenUuid)")
    deliver(SECRET_NAME)
    new = json.loads(client.get_secret(SECRET_NAME).value or "{}")
    names = sorted(t.name for t in jenkins.tokens(USER))
    both = _works(jenkins, first) and _works(jenkins, new["token"])
    say(f"   near-expiry event: the rotator minted a token as {USER} itself; tokens now: {names}")
    say(f"   during the grace period both tokens work: {_yes(both)}")
    time.sleep(GRACE_HOURS * 3600 + 0.5)
    app.sweeper(TimerRequest(past_due=False))
    old_refused = not _works(jenkins, first)
    new_works = _works(jenkins, new["token"])
    say(f"   after the grace period the timer's sweep revoked the old token: "
        f"old refused {_yes(old_refused)}, new works {_yes(new_works)}, "
        f"tokens left {len(jenkins.tokens(USER))}")
    return both and old_refused and new_works


def _works(jenkins: JenkinsTwin, token: str) -> bool:
    answer = jenkins.session(USER, token).get(jenkins.url + "whoAmI/api/json", timeout=5)
    return answer.status_code == 200 and answer.json().get("name") == USER


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"
