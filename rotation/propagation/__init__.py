"""Propagating a rotation into Kubernetes: which External Secrets Operator objects to refresh.

After a new version of a Key Vault secret is promoted, the ExternalSecrets (ES) and
ClusterExternalSecrets (CES) that read it must re-sync, so that Reloader can restart the
workloads using the Kubernetes Secret. :mod:`rotation.propagation.matching` decides, for each
ES and CES, whether to annotate it (``external-secrets.io/force-sync``), annotate its parent
CES instead, report it to a human, or leave it alone, and says why.

The deciding is pure: plain dicts in (the JSON of Kubernetes objects, from a live cluster or
from YAML files), typed verdicts out; no I/O and no ``kubernetes`` or ``azure.functions``
import, so the same rules serve the rotation, a dry run and the tests. The facts it relies on,
with their upstream sources, are in the project's ESO reference notes (ESO v2.9.0).

Modules, lowest first: ``kube`` (reading untrusted JSON), ``goregexp`` (Go regexps, matched by
RE2), ``stores`` (SecretStores, vault URLs, namespace conditions), ``refs`` (one reference
in an ES spec against the rotated secret), ``matching`` (one verdict per ES/CES).
"""
