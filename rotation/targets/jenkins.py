"""Jenkins API tokens (kind ``jenkins``): a new token minted by the service user itself, both
working during the overlap, the previous one revoked when it is due.

The stored value is ``{"username", "token", "tokenUuid"}``. Facts this module relies on,
from Jenkins' source (``core/src/main/java/jenkins/security/ApiTokenProperty.java`` and the
``apitoken`` package; ../shared/reference/jenkins-api-tokens.md cites the lines):

- Only the user itself may create its tokens (administrators may not, by default), so the
  service user authenticates with its current token, HTTP Basic ``id:token``, and calls
  ``POST {root}user/{id}/descriptorByName/jenkins.security.ApiTokenProperty/generateNewToken``
  with ``newTokenName``. API-token Basic auth needs no CSRF crumb (``ApiCrumbExclusion``).
  The answer, ``{"status":"ok","data":{"tokenUuid","tokenName","tokenValue",...}}``, is the
  only time the value exists in plain: the engine stores it as pending at once.
- ``GET {root}whoAmI/api/json`` proves a token: ``name`` is the authenticated user; a bad,
  revoked or expired token gets 401 before any page is reached.
- ``POST .../revoke`` with ``tokenUuid`` answers 200 whether or not the uuid exists, so a
  revoke is proven by the previous token then getting 401, not by the revoke's status.
- There is no API that lists a user's tokens: the uuid in the value is the only handle on
  the previous token, and a token minted by an attempt that died before storing it cannot
  be found. It is reported as a leftover; where the operator's target declares the user's
  tokens the rotator's alone (``exclusiveTokens``), retirement uses ``revokeAllExcept`` the
  new token, which removes the previous token and any leftover at once. Never otherwise:
  ``revokeAllExcept`` would also end tokens other tools of that user rely on.

A value's ``tokenUuid`` is trusted only to name one of the service user's own tokens:
Jenkins lets a user revoke only its own tokens, so a wrong uuid can at worst end another
token of the same user, and retirement then proves the previous token is refused.
"""

from __future__ import annotations

import base64
from datetime import datetime

from rotation.errors import AccessDenied, SecretNotRotatable, VerificationFailed
from rotation.secret_value import Credential, SecretValue
from rotation.targets.base import TargetContext
from rotation.targets.https_client import Answer, HttpsTarget, path_part

_DESCRIPTOR = "descriptorByName/jenkins.security.ApiTokenProperty"


class JenkinsTokenTarget:
    """One Jenkins user's API token, rotated by the user itself with an overlap."""

    retires_previous = True  # both tokens work until retire revokes the previous one

    def __init__(self, context: TargetContext) -> None:
        definition = context.definition
        self._exclusive = definition.exclusive_tokens
        self._http = HttpsTarget(definition.connection["root"], ca_bundle=definition.tls.ca_bundle,
                                 timeout_seconds=context.connect_timeout_seconds,
                                 what=f"Jenkins {definition.target_id!r}")

    def next_username(self, current: Credential) -> str:
        return current.username

    def parity_differences(self, current: Credential) -> list[str]:
        return []  # one user: a new token has exactly the user's rights

    def accepts(self, credential: Credential) -> bool:
        """True when ``whoAmI`` answers as the credential's user; False on 401.

        A token that authenticates as another user is refused outright: the value names a
        user its token does not belong to.
        """
        answer = self._http.call("GET", "whoAmI/api/json", authorization=_basic(credential))
        if answer.status == 401:
            return False
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise SecretNotRotatable(f"Jenkins whoAmI answered HTTP {answer.status}: is the "
                                     "target's address Jenkins' root URL (with its context path)?")
        name = answer.body.get("name")
        if answer.body.get("anonymous") or not isinstance(name, str):
            return False
        if name.lower() != credential.username.lower():  # Jenkins' default IdStrategy
            raise SecretNotRotatable(f"the token authenticates as Jenkins user {name[:64]!r}, not "
                                     f"as {credential.username!r} named by the value")
        return True

    def verify(self, credential: Credential) -> None:
        if not self.accepts(credential):
            raise VerificationFailed(f"the new Jenkins token of {credential.username!r} is refused")

    def mint(self, current: Credential, name: str, expires_on: datetime) -> Credential:
        """``generateNewToken`` as the user itself. No expiry is asked for: Jenkins before
        2.548 has none, and the Key Vault version's expiry drives the next rotation."""
        answer = self._descriptor(current, "generateNewToken", {"newTokenName": name})
        data = answer.body.get("data") if isinstance(answer.body, dict) else None
        if answer.status != 200 or not isinstance(data, dict) or answer.body.get("status") != "ok":
            raise SecretNotRotatable(f"Jenkins did not create a token: {_why(answer)}")
        value, uuid = data.get("tokenValue"), data.get("tokenUuid")
        if not (isinstance(value, str) and value and isinstance(uuid, str) and uuid):
            raise SecretNotRotatable("Jenkins' generateNewToken answer lacks tokenValue or tokenUuid")
        return Credential(current.username, SecretValue(value), secret_field=current.secret_field,
                          ref_field="tokenUuid", ref=uuid)

    def apply(self, current: Credential, new: Credential) -> None:
        """Nothing to do: the token exists from the moment it was minted."""

    def sweep_strays(self, current: Credential, name: str) -> list[str]:
        """Jenkins cannot list tokens: a stray is reported, and removed at retirement where
        the operator declared the user's tokens the rotator's alone."""
        if self._exclusive:
            return []
        return [f"Jenkins token {name!r} of user {current.username!r} (revoke it in the "
                "user's Security page)"]

    def retire(self, previous: Credential, current: Credential) -> None:
        """Revoke the previous token (every other token, where exclusive) with the new one,
        then prove the previous token is refused."""
        if self._exclusive and current.ref:
            self._descriptor(current, "revokeAllExcept", {"tokenUuid": current.ref})
        elif previous.ref:
            self._descriptor(current, "revoke", {"tokenUuid": previous.ref})
        else:
            raise SecretNotRotatable("the previous token has no tokenUuid; it cannot be revoked")
        if self.accepts(previous):
            raise VerificationFailed(f"Jenkins still accepts the previous token of "
                                     f"{previous.username!r} (is its tokenUuid right?)")

    def _descriptor(self, who: Credential, method: str, form: dict[str, str]) -> Answer:
        path = f"user/{path_part(who.username)}/{_DESCRIPTOR}/{method}"
        answer = self._http.call("POST", path, authorization=_basic(who), form=form)
        if answer.status == 401:
            raise AccessDenied(f"Jenkins refused the token of {who.username!r} for {method}")
        if answer.status == 403:
            raise AccessDenied(f"Jenkins forbids {who.username!r} to {method} (a user may create "
                               "and revoke only its own tokens)")
        if answer.status == 404:
            raise SecretNotRotatable(f"Jenkins has no user {who.username!r}")
        if answer.status != 200:
            raise SecretNotRotatable(f"Jenkins {method} answered HTTP {answer.status}")
        return answer


def _basic(credential: Credential) -> SecretValue:
    pair = f"{credential.username}:{credential.password.reveal()}".encode()
    return SecretValue("Basic " + base64.b64encode(pair).decode("ascii"))


def _why(answer: Answer) -> str:
    message = answer.body.get("message") if isinstance(answer.body, dict) else None
    return message[:200] if isinstance(message, str) else f"HTTP {answer.status}"
