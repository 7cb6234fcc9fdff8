"""Privilege parity of an alternating pair of PostgreSQL logins, checked before every switch.

The most reported failure of alternating-users rotation is two logins that silently drift
apart: someone grants a role or a table to ``app_clone`` only, sets ``search_path`` on ``app``
only, or lets migrations run as the clone, and the next switch breaks the application. This
module compares what each login can do and names every difference, before anything changes.

The clone is a member of the base and inherits its privileges, so what the base has the clone
has too, as long as it is a member with ``INHERIT``. Drift is therefore what the clone has or
lacks *beside* that membership:

- membership in the base, and ``INHERIT``;
- other role memberships of its own;
- per-role settings (``ALTER ROLE … SET``, for every database and for this one), which are
  not inherited;
- the connection limit, which is not inherited;
- direct privileges on tables, sequences, views and schemas of this database;
- objects it owns in this database (they should be owned by the base).

A clone that does not exist yet is compared as the rotation would create it: a member of the
base with ``INHERIT`` and nothing else, so a base with per-role settings or a connection limit
is reported before the first switch too.

The queries run through a function the PostgreSQL target passes in, so this module stays
free of the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Query = Callable[[str, tuple[object, ...]], Sequence[tuple[object, ...]]]

_ROLE = "SELECT rolinherit, rolconnlimit FROM pg_roles WHERE rolname = %s"
_SETTINGS = """
    SELECT CASE WHEN s.setdatabase = 0 THEN '' ELSE 'in this database: ' END || c.setting
    FROM pg_db_role_setting s
    JOIN pg_roles r ON r.oid = s.setrole
    CROSS JOIN LATERAL unnest(s.setconfig) AS c(setting)
    WHERE r.rolname = %s
      AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
"""
_MEMBER_OF = """
    SELECT g.rolname FROM pg_auth_members m
    JOIN pg_roles g ON g.oid = m.roleid
    JOIN pg_roles u ON u.oid = m.member
    WHERE u.rolname = %s
"""
_OWNED = """
    SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid AND relkind IN
                ('r', 'p', 'v', 'm', 'S', 'f'))
         + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
         + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
    FROM pg_roles r WHERE r.rolname = %s
"""
_DIRECT_GRANTS = """
    SELECT a.privilege_type || ' on ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL aclexplode(c.relacl) a
    WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)
    UNION ALL
    SELECT a.privilege_type || ' on schema ' || quote_ident(n.nspname)
    FROM pg_namespace n
    CROSS JOIN LATERAL aclexplode(n.nspacl) a
    WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)
"""


@dataclass(frozen=True, slots=True)
class LoginProfile:
    """What one login can do beside inherited membership, in the connected database."""

    name: str
    inherit: bool
    connection_limit: int
    settings: frozenset[str]
    member_of: frozenset[str]
    owned_objects: int
    direct_grants: frozenset[str]


def read_profile(query: Query, name: str) -> LoginProfile | None:
    """The login's profile, or None when it does not exist."""
    role = query(_ROLE, (name,))
    if not role:
        return None
    inherit, limit = role[0]
    owned = query(_OWNED, (name,))
    return LoginProfile(
        name=name,
        inherit=bool(inherit),
        connection_limit=int(str(limit)),
        settings=frozenset(str(row[0]) for row in query(_SETTINGS, (name,))),
        member_of=frozenset(str(row[0]) for row in query(_MEMBER_OF, (name,))),
        owned_objects=int(str(owned[0][0])) if owned else 0,
        direct_grants=frozenset(str(row[0]) for row in query(_DIRECT_GRANTS, (name, name))),
    )


def as_created(clone: str, base: str) -> LoginProfile:
    """The clone as the alternating-users strategy creates it: a member of the base."""
    return LoginProfile(name=clone, inherit=True, connection_limit=-1, settings=frozenset(),
                        member_of=frozenset({base}), owned_objects=0,
                        direct_grants=frozenset())


def differences(base: LoginProfile, clone: LoginProfile) -> list[str]:
    """Every way ``clone`` can do more or less than ``base``, each named; empty at parity."""
    b, c = base.name, clone.name
    found: list[str] = []
    if b not in clone.member_of:
        found.append(f"{c!r} is not a member of {b!r}, so it has none of its privileges")
    if not clone.inherit:
        found.append(f"{c!r} is NOINHERIT, so it does not use the privileges of {b!r}")
    for role in sorted(clone.member_of - base.member_of - {b}):
        found.append(f"{c!r} is a member of {role!r}; {b!r} is not")
    for setting in sorted(base.settings - clone.settings):
        found.append(f"{c!r} lacks the setting {setting!r} that {b!r} has")
    for setting in sorted(clone.settings - base.settings):
        found.append(f"{c!r} has the setting {setting!r}; {b!r} has not")
    if clone.connection_limit != base.connection_limit:
        found.append(f"{c!r} has connection limit {clone.connection_limit}; "
                     f"{b!r} has {base.connection_limit}")
    for grant in sorted(clone.direct_grants - base.direct_grants):
        found.append(f"{c!r} has {grant}; {b!r} has not")
    if clone.owned_objects:
        found.append(f"{c!r} owns {clone.owned_objects} object(s) in this database; they should "
                     f"be owned by {b!r} (run migrations as {b!r}, or SET ROLE {b!r} first)")
    return found
