"""The web methods of ``ApiTokenProperty.DescriptorImpl`` (all ``@RequirePOST``).

From ``core/src/main/java/jenkins/security/ApiTokenProperty.java`` (jenkinsci/jenkins
@ff9430ee), each reached at ``user/{id}/descriptorByName/jenkins.security.ApiTokenProperty/``:

===================  =====================  ==============================================
method               who may call it        answers
===================  =====================  ==============================================
generateNewToken     the user itself only   403 empty; 200 okJSON; 200 errorJSON (past
                     (admins only with      expiry); unparsable expiry -> 500
                     adminCanGenerate...)
revoke               the user or an admin   403 + X-Required-Permission; 400 blank uuid;
                                            200 empty, also for an unknown uuid
revokeAll            the user or an admin   200 empty
revokeAllExcept      the user or an admin   400 blank uuid; 200 empty (unknown uuid:
                                            everything is revoked)
rename               the user or an admin   200 errorJSON for blank name / blank uuid /
                                            unknown uuid; 200 ``{"status":"ok"}``
===================  =====================  ==============================================

"The user or an admin" is ``u.checkPermission(Jenkins.ADMINISTER)`` on the User, whose ACL
gives every non-anonymous user full control of itself (``User.getACL``). Parameter order of
the checks is Jenkins': permission first, then the parameters.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from twins.jenkins import answers, wire
from twins.jenkins.clock import TwinClock
from twins.jenkins.exchange import Request, Response
from twins.jenkins.security import Caller
from twins.jenkins.store import JenkinsStore, JenkinsUser

logger = logging.getLogger(__name__)

DESCRIPTOR = "jenkins.security.ApiTokenProperty"
EXPIRATION_IN_PAST = "Expiration date is in the past."  # Messages.ApiTokenProperty_expirationInPast
TOKEN_CREATED_ON = "Token created on {0}"  # Messages.Token_Created_on
_ISO_LOCAL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_JAVA_INT = re.compile(r"[+-]?[0-9]+")  # Integer.parseInt, ASCII digits


class _BadExpiration(ValueError):
    """``LocalDate.parse`` or ``Integer.parseInt`` threw: Jenkins answers with a 500 page."""


@dataclass(frozen=True)
class TokenCall:
    """One call of a web method: the request, who makes it, and whose tokens it is about."""

    request: Request
    caller: Caller
    owner: JenkinsUser


WebMethod = Callable[[TokenCall], Response]


class ApiTokenEndpoints:
    """The descriptor's web methods over one store."""

    def __init__(self, store: JenkinsStore, clock: TwinClock, *, admin_can_generate: bool = False) -> None:
        self._store = store
        self._clock = clock
        self._admin_can_generate = admin_can_generate
        self.methods: dict[str, WebMethod] = {
            "generateNewToken": self.generate_new_token,
            "revoke": self.revoke,
            "revokeAll": self.revoke_all,
            "revokeAllExcept": self.revoke_all_except,
            "rename": self.rename,
        }

    def generate_new_token(self, call: TokenCall) -> Response:
        """``doGenerateNewToken``: only the owner (``hasCurrentUserRightToGenerateNewToken``)."""
        if not self._may_generate(call):
            return answers.forbidden()
        name = call.request.param("newTokenName")
        if name is None or not name.strip():
            name = TOKEN_CREATED_ON.format(wire.iso_offset_date_time(self._clock.now()))
        try:
            expires = self._expiration(
                call.request.param("tokenExpiration"), call.request.param("expirationDuration")
            )
        except _BadExpiration as exc:
            logger.info("generateNewToken with an unparsable expiration: %s", exc)
            return answers.oops(secrets.token_hex(8))
        if expires is not None and expires < self._clock.today():
            return answers.status_json(wire.error_json(EXPIRATION_IN_PAST))
        token = self._store.generate(call.owner.id, name, expires)
        accept_language = call.request.header("Accept-Language")
        return answers.status_json(wire.ok_json(wire.new_token_data(token, accept_language)))

    def revoke(self, call: TokenCall) -> Response:
        """``doRevoke``: an unknown uuid is not an error, so revoking twice is fine."""
        return _with_token_uuid(call, self._store.revoke)

    def revoke_all(self, call: TokenCall) -> Response:
        """``doRevokeAll`` (``@Restricted(NoExternalUse)`` restricts Java callers, not HTTP)."""
        denied = _check_administer(call)
        if denied is not None:
            return denied
        self._store.revoke_all(call.owner.id)
        return answers.ok()

    def revoke_all_except(self, call: TokenCall) -> Response:
        """``doRevokeAllExcept``: keeps one token; an unknown uuid keeps none."""
        return _with_token_uuid(call, self._store.revoke_all_except)

    def rename(self, call: TokenCall) -> Response:
        """``doRename``: every refusal after the permission check is a 200 errorJSON."""
        denied = _check_administer(call)
        if denied is not None:
            return denied
        new_name = call.request.param("newName")
        token_uuid = call.request.param("tokenUuid")
        if new_name is None or not new_name.strip():
            return answers.status_json(wire.error_json("The name cannot be empty"))
        if token_uuid is None or not token_uuid.strip():
            return answers.status_json(wire.error_json("The tokenUuid cannot be empty"))
        if not self._store.rename(call.owner.id, token_uuid, new_name):
            return answers.status_json(wire.error_json("No token found, try refreshing the page"))
        return answers.status_json(wire.ok_json())

    def _may_generate(self, call: TokenCall) -> bool:
        user = call.caller.user
        if user is None:
            return False
        if self._admin_can_generate and user.admin:
            return True
        return user.id.lower() == call.owner.id.lower()

    def _expiration(self, token_expiration: str | None, duration: str | None) -> date | None:
        """``getExpirationDate``: "", never, custom (+ ``YYYY-MM-DD``) or a number of days."""
        duration = (duration or "").strip()
        if duration in ("", "never"):
            return None
        if duration == "custom":
            # LocalDate.parse takes ISO_LOCAL_DATE only; date.fromisoformat would also take
            # "20260101" or "2026-W01-1", so the shape is checked first.
            if token_expiration is None or not _ISO_LOCAL_DATE.fullmatch(token_expiration):
                raise _BadExpiration(f"tokenExpiration={token_expiration!r}")
            try:
                return date.fromisoformat(token_expiration)
            except ValueError as exc:
                raise _BadExpiration(f"tokenExpiration={token_expiration!r}") from exc
        if not _JAVA_INT.fullmatch(duration) or not -(2**31) <= int(duration) < 2**31:
            raise _BadExpiration(f"expirationDuration={duration!r}")
        try:
            return self._clock.today() + timedelta(days=int(duration))
        except OverflowError:
            # Java's LocalDate reaches year 999999999; Python's date stops at 9999.
            return date.min if int(duration) < 0 else date.max


def _check_administer(call: TokenCall) -> Response | None:
    """``u.checkPermission(Jenkins.ADMINISTER)`` on the owner: None when allowed."""
    user = call.caller.user
    if user is not None and (user.admin or user.id.lower() == call.owner.id.lower()):
        return None
    return answers.access_denied(call.caller.name, answers.ADMINISTER)


def _with_token_uuid(call: TokenCall, action: Callable[[str, str], object]) -> Response:
    """Permission, a non-blank ``tokenUuid`` (400 otherwise), ``action(owner, uuid)``, empty 200.

    ``doRevoke`` and ``doRevokeAllExcept`` check the same things in the same order and differ
    only in the store call, so the order lives here once.
    """
    denied = _check_administer(call)
    if denied is not None:
        return denied
    token_uuid = call.request.param("tokenUuid")
    if token_uuid is None or not token_uuid.strip():
        return answers.send_error(400, call.request.path, "The tokenUuid cannot be empty")
    action(call.owner.id, token_uuid)
    return answers.ok()
