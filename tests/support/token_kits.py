"""Test kits for API-token targets: a Jenkins service user on the Jenkins twin, a NetBox user
on the real NetBox, each with a first token stored in Key Vault as an operator onboards it.

They follow :class:`tests.support.kits.Kit` where a token can (declare the target, make a
bound secret, tell whether a token authenticates) and add what tokens need: the tokens the
server holds for the user, to prove nothing is left behind. A token cannot be set by hand
the way a password can, so the harnesses that change passwords behind the rotator's back
(``tests/integration/test_long_faults.py``) do not run on them; the fault-injection suite
(``tests/protocol/test_token_faults.py``) does.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.keyvault.secrets import SecretClient

from tests.support.kits import Kit, KitSpec, Secret
from tests.support.netbox import NetBoxServer
from tests.support.targets import token_target
from twins.jenkins import JenkinsTwin


class TokenKit(Kit):
    """A kit whose credentials are API tokens the server mints."""

    exclusive: bool | None = None

    @property
    def target(self) -> str:
        return f"kit-{self.kind}" + ("-exclusive" if self.exclusive else "")

    @property
    def needs_admin(self) -> bool:
        return False

    def prepare(self) -> None:
        return None  # a token is rotated with the token itself: no admin to create

    def make_secret(self) -> Secret:
        """A fresh user, its first token, and the secret holding them."""
        user = f"k-{uuid.uuid4().hex[:12]}"
        token, ref_field, ref = self.onboard(user)
        name = f"{self.kind}-{user}"
        stored = self.kv.set_secret(name, json.dumps({"username": user, "token": token, ref_field: ref}),
                                    content_type="application/json",
                                    tags={"rotator-target": self.target},
                                    expires_on=datetime.now(UTC) + timedelta(days=20))
        return Secret(name, user, token, stored.properties.version or "")

    def onboard(self, user: str) -> tuple[str, str, object]:
        """Create ``user`` and its first token: (token, reference field, reference)."""
        raise NotImplementedError

    def tokens(self, user: str) -> list[str]:
        """The names (Jenkins) or descriptions (NetBox) of ``user``'s tokens, sorted."""
        raise NotImplementedError

    def create_login(self, role: str, password: str) -> None:
        raise NotImplementedError("token kits make their users in onboard()")

    def set_password_by_hand(self, role: str, password: str) -> None:
        raise NotImplementedError("a token is minted by its server; it cannot be set by hand")


class JenkinsKit(TokenKit):
    kind = "jenkins"

    def __init__(self, strategy: str, kv: SecretClient, twin: JenkinsTwin, *,
                 exclusive: bool = False) -> None:
        super().__init__(strategy, kv)
        self.twin, self.exclusive = twin, exclusive

    def declaration(self) -> dict[str, Any]:
        return token_target("jenkins", self.twin.url, self.twin.ca_path, exclusive=self.exclusive)

    def onboard(self, user: str) -> tuple[str, str, object]:
        self.twin.add_user(user)
        token = self.twin.add_token(user, "onboarded by hand")
        return token, "tokenUuid", self.twin.tokens(user)[0].uuid

    def logs_in(self, user: str, password: str) -> bool:
        answer = self.twin.session(user, password).get(self.twin.url + "whoAmI/api/json", timeout=10)
        return answer.status_code == 200 and answer.json().get("name") == user

    def tokens(self, user: str) -> list[str]:
        return sorted(token.name for token in self.twin.tokens(user))


class NetBoxKit(TokenKit):
    kind = "netbox"

    def __init__(self, strategy: str, kv: SecretClient, netbox: NetBoxServer) -> None:
        super().__init__(strategy, kv)
        self.netbox = netbox
        self.user_ids: dict[str, int] = {}

    def declaration(self) -> dict[str, Any]:
        return token_target("netbox", self.netbox.url, self.netbox.ca_path)

    def onboard(self, user: str) -> tuple[str, str, object]:
        self.user_ids[user] = self.netbox.create_user(user)
        token_id, token = self.netbox.create_token(self.user_ids[user], description="onboarded by hand")
        return token, "tokenId", token_id

    def logs_in(self, user: str, password: str) -> bool:
        answer = self.netbox.request("GET", "/api/authentication-check/", token=password)
        return answer.status_code == 200 and answer.json().get("username") == user

    def tokens(self, user: str) -> list[str]:
        return sorted(token["description"] for token in self.netbox.tokens(self.user_ids[user]))


#: The token kits, by name; ``jenkins_twin`` is a fixture of the suites that use them.
TOKEN_KITS: dict[str, KitSpec] = {
    "jenkins-overlap": KitSpec("jenkins_twin", JenkinsKit, "overlap"),
    "jenkins-exclusive": KitSpec("jenkins_twin", lambda strategy, kv, twin: JenkinsKit(
        strategy, kv, twin, exclusive=True), "overlap"),
    "netbox-overlap": KitSpec("netbox", NetBoxKit, "overlap"),
}
