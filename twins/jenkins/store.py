"""Users and their API-token stores: the state the twin's endpoints read and change.

Mirrors ``core/src/main/java/jenkins/security/apitoken/ApiTokenStore.java`` (jenkinsci/jenkins
@ff9430ee) where a client can tell the difference:

- a new token is ``"11"`` + 32 lowercase hex characters (16 random bytes); only the SHA-256 of
  the 32 hex characters is kept (``generateNewToken``, ``prepareAndStoreToken``);
- matching (``findMatchingToken``): a 34-character value is a new-style token and only its last
  32 characters are hashed, so the 2-character version prefix is never compared; a value of
  any other length is a legacy token and is hashed whole. The digest is then compared with
  *every* token of the user, whatever its kind;
- a token expires after its expiry date (``HashedToken.isExpired``: ``expiry < today``), is
  "about to expire" before today + 7 days, and an expired token never matches;
- revoking an unknown uuid changes nothing (``revokeToken`` returns null);
  ``revokeAllTokensExcept`` with an unknown uuid removes everything.

User ids are compared case-insensitively, as Jenkins' default ``IdStrategy`` does; the id
keeps the spelling it was created with. The plaintext of a token exists only in the value
returned when it is made.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import uuid as uuid_module
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import NamedTuple

from twins.jenkins.clock import TwinClock

NEW_TOKEN_VERSION = "11"
LEGACY_TOKEN_VERSION = "10"
NEW_TOKEN_LENGTH = 34
LEGACY_TOKEN_NAME = "Legacy Token"  # Messages.properties ApiTokenProperty.LegacyTokenName
ABOUT_TO_EXPIRE = timedelta(days=7)
_NEW_TOKEN = re.compile(r"11[0-9a-f]{32}")


class UnknownUserError(KeyError):
    """No user with that id (compared case-insensitively)."""


@dataclass(frozen=True)
class JenkinsUser:
    """What the endpoints need to know about a user; a snapshot, safe to hand out."""

    id: str
    full_name: str
    admin: bool = False
    description: str | None = None


class TokenInfo(NamedTuple):
    """A token as the user's security page lists it: never its value."""

    uuid: str
    name: str
    expires: date | None


@dataclass
class _Token:
    uuid: str
    name: str
    version: str
    digest: bytes = field(repr=False)
    created: datetime
    expires: date | None

    def expired(self, today: date) -> bool:
        return self.expires is not None and self.expires < today

    def about_to_expire(self, today: date) -> bool:
        return self.expires is not None and self.expires < today + ABOUT_TO_EXPIRE


@dataclass
class _Account:
    user: JenkinsUser
    password: str | None = field(default=None, repr=False)
    tokens: list[_Token] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class NewToken:
    """A token just made: its listing entry, expiry flags and the only copy of its value."""

    info: TokenInfo
    about_to_expire: bool
    value: str = field(repr=False)


class JenkinsStore:
    """Every user and token of the twin; thread-safe, one lock for all of it."""

    def __init__(self, clock: TwinClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}

    # -- users ----------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        *,
        full_name: str | None = None,
        password: str | None = None,
        admin: bool = False,
        description: str | None = None,
    ) -> JenkinsUser:
        """Create a user; ``ValueError`` for a blank id or one taken in any letter case."""
        if not user_id or user_id != user_id.strip() or "/" in user_id:
            raise ValueError(f"invalid user id {user_id!r}")
        user = JenkinsUser(user_id, full_name or user_id, admin, description)
        with self._lock:
            if _key(user_id) in self._accounts:
                raise ValueError(f"user {user_id!r} exists")
            self._accounts[_key(user_id)] = _Account(user, password or None)
        return user

    def user(self, user_id: str) -> JenkinsUser | None:
        """The user with this id in any letter case, or ``None``."""
        with self._lock:
            account = self._accounts.get(_key(user_id))
            return account.user if account else None

    def users(self) -> list[JenkinsUser]:
        """All users, in creation order."""
        with self._lock:
            return [account.user for account in self._accounts.values()]

    def set_admin(self, user_id: str, admin: bool) -> JenkinsUser:
        """Grant or withdraw Overall/Administer."""
        with self._lock:
            account = self._account(user_id)
            account.user = replace(account.user, admin=admin)
            return account.user

    # -- authentication --------------------------------------------------------------

    def match_token(self, user_id: str, value: str) -> JenkinsUser | None:
        """The user if ``value`` is one of its live tokens (``ApiTokenStore.findMatchingToken``)."""
        if not value:
            return None
        secret = value[2:] if len(value) == NEW_TOKEN_LENGTH else value
        digest = _sha256(secret)
        today = self._clock.today()
        with self._lock:
            account = self._accounts.get(_key(user_id))
            if account is None:
                return None
            for token in account.tokens:
                if hmac.compare_digest(token.digest, digest) and not token.expired(today):
                    return account.user
        return None

    def match_password(self, user_id: str, password: str) -> JenkinsUser | None:
        """The user if ``password`` is its real password (the fallback after a token miss)."""
        with self._lock:
            account = self._accounts.get(_key(user_id))
            if account is None or account.password is None:
                return None
            if hmac.compare_digest(account.password.encode(), password.encode()):
                return account.user
        return None

    # -- tokens -----------------------------------------------------------------------

    def generate(self, user_id: str, name: str, expires: date | None) -> NewToken:
        """A fresh random ``11`` token (``ApiTokenStore.generateNewToken``)."""
        secret = secrets.token_hex(16)
        return self._add(user_id, name, NEW_TOKEN_VERSION, secret, NEW_TOKEN_VERSION + secret, expires, None)

    def add_fixed(
        self, user_id: str, name: str, value: str, expires: date | None = None, uuid: str | None = None
    ) -> NewToken:
        """A new-style token with a chosen value (``addFixedNewToken``: ``11`` + 32 hex)."""
        if not _NEW_TOKEN.fullmatch(value[:2] + value[2:].lower()):
            raise ValueError("a new-style token is '11' followed by 32 hex characters")
        return self._add(user_id, name, NEW_TOKEN_VERSION, value[2:].lower(), value, expires, uuid)

    def add_legacy(self, user_id: str, value: str | None = None, uuid: str | None = None) -> NewToken:
        """The user's pre-2.129 token: 32 hex by default, matched whole, named "Legacy Token"."""
        value = value or secrets.token_hex(16)
        if len(value) == NEW_TOKEN_LENGTH:
            raise ValueError("a 34-character value is always read as a new-style token")
        with self._lock:
            if any(t.version == LEGACY_TOKEN_VERSION for t in self._account(user_id).tokens):
                raise ValueError(f"user {user_id!r} already has a legacy token")
        return self._add(user_id, LEGACY_TOKEN_NAME, LEGACY_TOKEN_VERSION, value, value, None, uuid)

    def revoke(self, user_id: str, token_uuid: str) -> bool:
        """Remove one token; False (and no change) for an unknown uuid."""
        with self._lock:
            account = self._account(user_id)
            kept = [t for t in account.tokens if t.uuid != token_uuid]
            removed = len(kept) != len(account.tokens)
            account.tokens = kept
            return removed

    def revoke_all(self, user_id: str) -> int:
        """Remove every token of the user; returns how many."""
        with self._lock:
            account = self._account(user_id)
            removed = len(account.tokens)
            account.tokens = []
            return removed

    def revoke_all_except(self, user_id: str, token_uuid: str) -> int:
        """Keep only ``token_uuid`` (nothing at all if it is unknown); returns how many went."""
        with self._lock:
            account = self._account(user_id)
            kept = [t for t in account.tokens if t.uuid == token_uuid]
            removed = len(account.tokens) - len(kept)
            account.tokens = kept
            return removed

    def rename(self, user_id: str, token_uuid: str, name: str) -> bool:
        """Rename one token; False for an unknown uuid."""
        with self._lock:
            for token in self._account(user_id).tokens:
                if token.uuid == token_uuid:
                    token.name = name
                    return True
            return False

    def tokens(self, user_id: str) -> list[TokenInfo]:
        """The user's tokens in creation order, expired ones included (Jenkins lists them too)."""
        with self._lock:
            return [TokenInfo(t.uuid, t.name, t.expires) for t in self._account(user_id).tokens]

    # -- internals --------------------------------------------------------------------

    def _add(  # noqa: PLR0917 - private; every caller passes all of them
        self,
        user_id: str,
        name: str,
        version: str,
        secret: str,
        value: str,
        expires: date | None,
        uuid: str | None,
    ) -> NewToken:
        now = self._clock.now()
        token = _Token(uuid or str(uuid_module.uuid4()), name, version, _sha256(secret), now, expires)
        with self._lock:
            account = self._account(user_id)
            if any(t.uuid == token.uuid for t in account.tokens):
                raise ValueError(f"token uuid {token.uuid!r} is taken")
            account.tokens.append(token)
        info = TokenInfo(token.uuid, token.name, token.expires)
        return NewToken(info, token.about_to_expire(now.date()), value)

    def _account(self, user_id: str) -> _Account:
        account = self._accounts.get(_key(user_id))
        if account is None:
            raise UnknownUserError(user_id)
        return account


def _key(user_id: str) -> str:
    """``IdStrategy.CASE_INSENSITIVE.keyFor``: ids differ only if they differ ignoring case."""
    return user_id.lower()


def _sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii", errors="replace")).digest()
