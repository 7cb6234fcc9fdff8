"""What one attempt at a rotation works with, rebuilt from Key Vault at every attempt.

Nothing here is trusted from an earlier attempt: the tags, the operator's target, the current
credential and the admin login are read again, because tags can be edited and passwords
changed by hand between two attempts.
"""

from __future__ import annotations

from dataclasses import dataclass

from rotation.binding import SecretBinding
from rotation.keyvault import KeyVaultSecrets
from rotation.secret_value import Credential
from rotation.targets.base import Target
from rotation.targets.definition import TargetDefinition


@dataclass
class RotationContext:
    """The rotation's secret, binding, target and credentials for this attempt."""

    kv: KeyVaultSecrets
    binding: SecretBinding
    definition: TargetDefinition
    previous: Credential  # the credential of the version being rotated
    admin: Credential | None
    target: Target
    new_tags: dict[str, str]
    pending: Credential | None = None  # read back from Key Vault once, when first needed
