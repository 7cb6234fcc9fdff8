"""A kubeconfig file for one token, as ``kubectl`` and ``kubernetes.config.load_kube_config`` read it.

Written as JSON, which is valid YAML (https://yaml.org/spec/1.2.2/#13-relation-to-json), so no
YAML writer is needed; the format is
https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/.
The cluster entry points at the twin's URL and its throwaway CA file; the user entry holds
the bearer token, so the file is created readable by its owner only.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

CLUSTER = "kubernetes-twin"


def write_kubeconfig(
    directory: Path, server: str, ca_path: Path, user: str, token: str, *, namespace: str = "default"
) -> Path:
    """Write ``kubeconfig-<user>`` in ``directory`` (mode 0600) and return its path."""
    context = f"{user}@{CLUSTER}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": {"server": server, "certificate-authority": str(ca_path)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": context, "context": {"cluster": CLUSTER, "user": user, "namespace": namespace}}
        ],
        "current-context": context,
        "preferences": {},
    }
    path = directory / f"kubeconfig-{re.sub(r'[^A-Za-z0-9_.-]+', '-', user)}"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
        handle.write("\n")
    path.chmod(0o600)
    return path
