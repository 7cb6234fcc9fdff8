"""Bearer-token authentication and RBAC authorization, as the API server's filters apply them.

A token maps to an :class:`Identity`: a user name (what 403 messages show, e.g.
``system:serviceaccount:apps:rotator``) and the :class:`PolicyRule` list its Roles and
ClusterRoles would grant. A request is allowed when one rule matches its attributes
(https://kubernetes.io/docs/reference/access-authn-authz/rbac/, ``rbac/v1`` ``PolicyRule``
matching in ``plugin/pkg/auth/authorizer/rbac/rbac.go``):

- verb: the rule lists it or ``*``;
- API group: listed or ``*`` (``""`` is the core group);
- resource: ``resource``, ``resource/subresource`` for a subresource (``externalsecrets``
  does *not* cover ``externalsecrets/status``), ``*``, or ``*/subresource``;
- resourceNames, if any: the request names one of them (never true for list or create);
- namespaces (the twin's stand-in for a RoleBinding's namespace), if any: the request is in
  one of them; a cluster-wide request (a list across namespaces, a cluster-scoped kind) is
  then not covered, as a RoleBinding never grants cluster scope.

Discovery and ``/version`` are open to any authenticated caller (``system:discovery``).
A missing or unknown token is a 401: the twin runs with anonymous auth off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twins.kubernetes import errors


@dataclass(frozen=True)
class PolicyRule:
    """One RBAC rule; ``namespaces=None`` grants cluster-wide (a ClusterRoleBinding)."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ("",)
    resources: tuple[str, ...] = ("*",)
    resource_names: tuple[str, ...] = ()
    namespaces: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("verbs", "api_groups", "resources", "resource_names"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))  # one value, not its characters
            else:
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.namespaces, str):
            object.__setattr__(self, "namespaces", (self.namespaces,))
        elif self.namespaces is not None:
            object.__setattr__(self, "namespaces", tuple(self.namespaces))

    @classmethod
    def from_dict(cls, rule: Mapping[str, Any], namespace: str | None = None) -> PolicyRule:
        """A rule from its manifest form (``apiGroups``, ``resources``, ``verbs``, ``resourceNames``).

        ``namespace`` limits it as a RoleBinding in that namespace would; a ``namespaces`` key
        in ``rule`` (the twin's extension) does the same for several.
        """
        namespaces = rule.get("namespaces")
        if namespace is not None:
            namespaces = [namespace]
        return cls(
            verbs=tuple(rule.get("verbs") or ()),
            api_groups=tuple(rule.get("apiGroups") or ()),
            resources=tuple(rule.get("resources") or ()),
            resource_names=tuple(rule.get("resourceNames") or ()),
            namespaces=tuple(namespaces) if namespaces is not None else None,
        )

    def allows(self, request: Attributes) -> bool:
        """Whether this rule grants ``request``."""
        if "*" not in self.verbs and request.verb not in self.verbs:
            return False
        if "*" not in self.api_groups and request.api_group not in self.api_groups:
            return False
        if not self._resource_matches(request):
            return False
        if self.resource_names and (not request.name or request.name not in self.resource_names):
            return False
        return self.namespaces is None or (bool(request.namespace) and request.namespace in self.namespaces)

    def _resource_matches(self, request: Attributes) -> bool:
        combined = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
        for resource in self.resources:
            if resource in ("*", combined):
                return True
            if request.subresource and resource == f"*/{request.subresource}":
                return True
        return False


ADMIN_RULES: tuple[PolicyRule, ...] = (PolicyRule(verbs=("*",), api_groups=("*",), resources=("*",)),)
"""cluster-admin."""


@dataclass(frozen=True)
class Identity:
    """Who a token authenticates as, and what it may do."""

    name: str
    rules: tuple[PolicyRule, ...] = ()
    groups: tuple[str, ...] = ("system:authenticated",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "groups", tuple(self.groups))


def rules_from_manifests(manifests: Iterable[Mapping[str, Any]]) -> tuple[PolicyRule, ...]:
    """The rules of Role / ClusterRole manifests, a Role's limited to its namespace.

    Lets a test grant a token exactly what the project's own RBAC manifests grant.
    """
    rules: list[PolicyRule] = []
    for manifest in manifests:
        kind = manifest.get("kind")
        if kind not in ("Role", "ClusterRole"):
            continue
        namespace = manifest.get("metadata", {}).get("namespace") if kind == "Role" else None
        if kind == "Role" and not namespace:
            raise ValueError(f"Role {manifest.get('metadata', {}).get('name')!r} has no namespace")
        rules.extend(PolicyRule.from_dict(rule, namespace) for rule in manifest.get("rules") or [])
    return tuple(rules)


@dataclass(frozen=True)
class Attributes:
    """What RBAC decides on: ``authorizer.Attributes`` of a resource request."""

    verb: str
    api_group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""


@dataclass
class Authenticator:
    """Token -> identity; tokens are compared as given (never logged)."""

    identities: dict[str, Identity] = field(default_factory=dict)

    def authenticate(self, authorization: str | None) -> Identity:
        """The caller of an ``Authorization`` header; 401 ``ApiError`` if absent or unknown."""
        if not authorization:
            raise errors.unauthorized()
        scheme, _, token = authorization.strip().partition(" ")
        identity = self.identities.get(token.strip()) if scheme.lower() == "bearer" else None
        if identity is None:
            raise errors.unauthorized()
        return identity


def authorize(identity: Identity, request: Attributes) -> None:
    """Raise the 403 the API server sends when no rule of ``identity`` grants ``request``."""
    if any(rule.allows(request) for rule in identity.rules):
        return
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    where = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    why = (
        f'User "{identity.name}" cannot {request.verb} resource "{resource}" '
        f'in API group "{request.api_group}" {where}'
    )
    raise errors.forbidden(request.resource, request.api_group, request.name, why)


def identities_from(tokens: Mapping[str, Identity | Sequence[PolicyRule]]) -> dict[str, Identity]:
    """Normalise ``{token: Identity | rules}``; bare rules get the name ``twin-user-<n>``."""
    identities: dict[str, Identity] = {}
    for number, (token, grant) in enumerate(tokens.items(), start=1):
        if not token:
            raise ValueError("a token must not be empty")
        identities[token] = (
            grant if isinstance(grant, Identity) else Identity(f"twin-user-{number}", tuple(grant))
        )
    return identities
