"""Identifier types, so a vault name is never passed where a secret name belongs."""

from __future__ import annotations

from typing import NewType

VaultName = NewType("VaultName", str)
SecretName = NewType("SecretName", str)
VersionId = NewType("VersionId", str)
RotationId = NewType("RotationId", str)
