"""NetBox API tokens (kind ``netbox``): a new token created by the user itself with the same
rights as the current one, both working during the overlap, the previous one deleted when due.

The stored value is ``{"username", "token", "tokenId"}``: ``token`` is what clients send
(``nbt_<key>.<secret>`` for v2 tokens, NetBox ≥ 4.5, as ``Authorization: Bearer``; 40
characters for deprecated v1 tokens, as ``Authorization: Token``), ``tokenId`` the token's id,
which NetBox deletes tokens by. ``tokenId`` may be left out for a v2 token: its key (the part
between ``nbt_`` and ``.``) finds it. Facts relied on (NetBox 4.5-4.7, ``netbox/users/api``,
``netbox/netbox/api/authentication.py``; ../shared/reference/protocols.md §4):

- ``GET /api/authentication-check/`` answers 200 with the authenticated user, or 403 with a
  ``detail`` naming why (``Invalid v2 token``, ``Token expired``, ``Token disabled``, a
  refused source IP).
- ``POST /api/users/tokens/`` by the user's own token (every user may manage its own tokens)
  creates a token and, from NetBox 4.6.1, answers 201 with the plaintext ``token`` (and the
  v2 ``key``). The new token copies ``version``, ``write_enabled`` and ``allowed_ips`` from
  the current one, so a rotation never gains or loses rights; an expiring current token
  gives an expiring new one, expiring with the new Key Vault version (copying the current
  expiry itself would hand over a token about to die).
- ``DELETE /api/users/tokens/{id}/`` answers 204; a token already gone answers 404, which
  retirement treats as done.

The description of a minted token is the rotation's name (``akv-rotator <rotation id>``), so
a token created by an attempt that died before storing it is found by it and deleted before
minting again: NetBox ends every rotation with no token left over.

A value's ``tokenId`` is checked before it is acted on: the token it names must belong to the
authenticated user and, for v2, carry the same key, so an edited value cannot make
retirement delete some other token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rotation.errors import AccessDenied, SecretNotRotatable, TransientError, VerificationFailed
from rotation.secret_value import Credential, SecretValue
from rotation.targets.base import TargetContext
from rotation.targets.https_client import Answer, HttpsTarget

V2_PREFIX = "nbt_"
_TOKENS = "api/users/tokens/"
_REFUSALS = {
    "Token expired": "has expired",
    "Token disabled": "is disabled",
    "User inactive": "belongs to an inactive user",
}


class NetBoxTokenTarget:
    """One NetBox user's API token, rotated by the user itself with an overlap."""

    retires_previous = True  # both tokens work until retire deletes the previous one

    def __init__(self, context: TargetContext) -> None:
        definition = context.definition
        self._http = HttpsTarget(definition.connection["root"], ca_bundle=definition.tls.ca_bundle,
                                 timeout_seconds=context.connect_timeout_seconds,
                                 what=f"NetBox {definition.target_id!r}")

    def next_username(self, current: Credential) -> str:
        return current.username

    def parity_differences(self, current: Credential) -> list[str]:
        return []  # the new token copies the current one's rights

    def accepts(self, credential: Credential) -> bool:
        """True when the token authenticates as the value's user; False when NetBox calls
        it invalid. Expired, disabled or IP-refused tokens are permanent errors that say
        what to do, since no retry or rotation can bring them back."""
        return self._whoami(credential) is not None

    def verify(self, credential: Credential) -> None:
        if not self.accepts(credential):
            raise VerificationFailed(f"the new NetBox token of {credential.username!r} is refused")

    def mint(self, current: Credential, name: str, expires_on: datetime) -> Credential:
        user = self._required_user(current)
        record = self._record(current, user)
        body = {"user": user["id"], "version": record.get("version", 2), "description": name,
                "write_enabled": record.get("write_enabled", True),
                "allowed_ips": record.get("allowed_ips") or [], "enabled": True,
                "expires": expires_on.isoformat() if record.get("expires") else None}
        answer = self._http.call("POST", _TOKENS, authorization=_header(current), json_body=body)
        self._refused(answer, "create a token")
        created = answer.body if isinstance(answer.body, dict) else {}
        token_id, plain = created.get("id"), created.get("token")
        if answer.status != 201 or not isinstance(token_id, int):
            raise SecretNotRotatable(f"NetBox did not create a token: HTTP {answer.status}")
        if not isinstance(plain, str) or not plain:
            self._delete(current, token_id)  # useless without its plaintext: leave nothing
            raise SecretNotRotatable("NetBox created the token but returned no plaintext; "
                                     "rotating NetBox tokens needs NetBox 4.6.1 or later")
        value = f"{V2_PREFIX}{created.get('key')}.{plain}" if created.get("version", 2) == 2 else plain
        return Credential(current.username, SecretValue(value), secret_field=current.secret_field,
                          ref_field="tokenId", ref=str(token_id))

    def apply(self, current: Credential, new: Credential) -> None:
        """Nothing to do: the token exists from the moment it was created."""

    def sweep_strays(self, current: Credential, name: str) -> list[str]:
        """Delete tokens of this user that carry ``name`` (minted, never stored)."""
        user = self._required_user(current)
        answer = self._http.call("GET", f"{_TOKENS}?user_id={user['id']}&limit=1000",
                                 authorization=_header(current))
        self._refused(answer, "list its tokens")
        results = answer.body.get("results", []) if isinstance(answer.body, dict) else []
        for token in results:
            if token.get("description") == name and str(token.get("id")) != current.ref:
                self._delete(current, int(token["id"]))
        return []

    def retire(self, previous: Credential, current: Credential) -> None:
        """Delete the previous token, checked to be the one the value names, then prove it
        is refused."""
        user = self._required_user(current)
        try:
            record = self._record(previous, user, authorization=current)
        except _Gone:
            record = None  # already deleted: nothing to do
        if record is not None:
            self._delete(current, int(record["id"]))
        if self.accepts(previous):
            raise VerificationFailed(f"NetBox still accepts the previous token of "
                                     f"{previous.username!r}")

    # -- NetBox calls ------------------------------------------------------------------------

    def _whoami(self, credential: Credential) -> dict[str, Any] | None:
        answer = self._http.call("GET", "api/authentication-check/",
                                 authorization=_header(credential))
        detail = _detail(answer)
        if answer.status in (401, 403):
            if detail.startswith("Invalid v") or "credentials were not provided" in detail:
                return None
            raise SecretNotRotatable(_refusal_advice(credential, detail))
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise TransientError(f"NetBox authentication-check answered HTTP {answer.status}")
        name = answer.body.get("username")
        if name != credential.username:
            raise SecretNotRotatable(f"the token authenticates as NetBox user {str(name)[:64]!r}, "
                                     f"not as {credential.username!r} named by the value")
        return answer.body

    def _required_user(self, credential: Credential) -> dict[str, Any]:
        user = self._whoami(credential)
        if user is None or not isinstance(user.get("id"), int):
            raise AccessDenied(f"NetBox refuses the token of {credential.username!r}")
        return user

    def _record(self, token: Credential, user: dict[str, Any], *,
                authorization: Credential | None = None) -> dict[str, Any]:
        """The NetBox token record ``token`` names: by its id, checked, or by its v2 key."""
        auth = _header(authorization or token)
        key = _v2_key(token)
        if token.ref is not None:
            answer = self._http.call("GET", f"{_TOKENS}{int(token.ref)}/", authorization=auth)
            if answer.status == 404:
                raise _Gone()
            self._refused(answer, "read a token")
            record = answer.body if isinstance(answer.body, dict) else {}
        elif key is not None:
            answer = self._http.call("GET", f"{_TOKENS}?user_id={user['id']}&key={key}",
                                     authorization=auth)
            self._refused(answer, "find a token")
            results = answer.body.get("results", []) if isinstance(answer.body, dict) else []
            if not results:
                raise _Gone()
            record = results[0]
        else:
            raise SecretNotRotatable("a v1 NetBox token needs 'tokenId' in the value: NetBox "
                                     "has no other way to find it")
        owner = record.get("user")
        owner_id = owner.get("id") if isinstance(owner, dict) else owner
        if owner_id != user["id"] or (key is not None and record.get("key") != key):
            raise SecretNotRotatable(f"the value's tokenId {token.ref} does not name this token "
                                     f"of {token.username!r}")
        return record

    def _delete(self, who: Credential, token_id: int) -> None:
        answer = self._http.call("DELETE", f"{_TOKENS}{token_id}/", authorization=_header(who))
        if answer.status not in (204, 404):
            self._refused(answer, "delete a token")
            raise SecretNotRotatable(f"NetBox did not delete token {token_id}: HTTP {answer.status}")

    @staticmethod
    def _refused(answer: Answer, what: str) -> None:
        if answer.status in (401, 403):
            raise AccessDenied(f"NetBox does not let the token {what}: {_detail(answer) or answer.status}"
                               " (the token needs write_enabled, and the user the default "
                               "permissions on its own tokens)")
        if answer.status == 400:
            raise SecretNotRotatable(f"NetBox refused to {what}: {_detail(answer) or 'HTTP 400'}")


class _Gone(Exception):
    """The token a value names no longer exists on NetBox."""


def _header(credential: Credential) -> SecretValue:
    token = credential.password.reveal()
    scheme = "Bearer" if token.startswith(V2_PREFIX) else "Token"
    return SecretValue(f"{scheme} {token}")


def _v2_key(credential: Credential) -> str | None:
    token = credential.password.reveal()
    if not token.startswith(V2_PREFIX) or "." not in token:
        return None
    key = token[len(V2_PREFIX):].split(".", 1)[0]
    return key if key.isascii() and key.isalnum() else None


def _detail(answer: Answer) -> str:
    """NetBox's ``detail`` message (its own text, never the token); else the JSON errors."""
    if isinstance(answer.body, dict):
        detail = answer.body.get("detail")
        if isinstance(detail, str):
            return detail[:200]
        return "; ".join(f"{k}: {v}" for k, v in answer.body.items())[:200]
    return ""


def _refusal_advice(credential: Credential, detail: str) -> str:
    why = next((text for key, text in _REFUSALS.items() if detail.startswith(key)),
               f"is refused ({detail or 'no reason given'})")
    return (f"NetBox's token of {credential.username!r} {why}, so it cannot authenticate the "
            "rotation: create a new token for that user in NetBox and store it (with its "
            "tokenId) as a new version of this secret; rotation then takes over again")
