"""What one attempt at a rotation works with, rebuilt from Key Vault at every attempt.

Nothing here is trusted from an earlier attempt: the tags, the operator's target, the current
credential and the admin login are read again, because tags can be edited and passwords
changed by hand between two attempts. Within one attempt they are read once: the first
attempt of a rotation takes the version being rotated from the read that began it
(:class:`~rotation.attempt.Opening`).
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
    #: The version being rotated was read in this attempt as the secret's latest, so prepare
    #: knows the secret has not moved on without asking Key Vault again.
    rotated_is_latest: bool = False
    #: The first attempt of a rotation its caller has just begun: no attempt before it can
    #: have stored a pending credential, so prepare does not look for one.
    first_attempt: bool = False
