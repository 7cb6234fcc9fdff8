"""Strong generated passwords that survive every place a database password travels.

A rotated password ends up in libpq and JDBC connection strings, URLs, ``.pgpass``, MySQL
option files (``my.cnf``), shell variables, ``.env`` files, JSON and Kubernetes YAML. Each
named *preset* is an alphabet that needs no quoting or escaping in any of them, so nobody
downstream has to get escaping right:

================  ===============================================  =========  ===========
preset            alphabet                                         default    lengths
================  ===============================================  =========  ===========
``url-safe``      ``A-Z a-z 0-9`` and ``- . _ ~`` (RFC 3986's       40         16-128
                  *unreserved* characters)
``alphanumeric``  ``A-Z a-z 0-9``                                  40         16-128
================  ===============================================  =========  ===========

Left out on purpose: ``: \\`` (``.pgpass`` fields), ``@ / ? # % & = +`` (URLs and JDBC query
strings, where ``+`` decodes to a space), quotes, spaces, ``$ ` ! * [ ;`` and friends
(shells), ``#`` and ``;`` (``my.cnf`` comments). Every password starts with a letter: a
leading ``-`` reads as an option to command-line clients, a leading ``~`` is expanded by a
shell after ``=``, and a YAML plain scalar that starts with a letter and is 16 characters or
longer always reads as a string (never a number, boolean or null). Every password holds each
of the preset's character classes at least once, as many password policies demand.

The target kind picks the default preset (``TargetKind.password_preset``); the operator's
target may set its own (``password`` in ``ROTATOR_TARGETS``); a secret's tags
``rotator-password-alphabet`` and ``rotator-password-length`` may choose among the presets
and lengths for that secret. All of them are harmless to choose: the weakest allowed,
16 alphanumeric characters, is 95 bits.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from rotation.secret_value import SecretValue

MIN_LENGTH = 16
MAX_LENGTH = 128
DEFAULT_LENGTH = 40


@dataclass(frozen=True, slots=True)
class PasswordPreset:
    """A named alphabet, split into the character classes every password must hold."""

    name: str
    classes: tuple[str, ...]

    @property
    def alphabet(self) -> str:
        return "".join(self.classes)


PRESETS: dict[str, PasswordPreset] = {
    preset.name: preset for preset in (
        PasswordPreset("url-safe", (string.ascii_lowercase, string.ascii_uppercase,
                                    string.digits, "-._~")),
        PasswordPreset("alphanumeric", (string.ascii_lowercase, string.ascii_uppercase,
                                        string.digits)),
    )
}
DEFAULT_PRESET = "url-safe"


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Which preset and how long: resolved from the target kind, the operator, the tags."""

    preset: str = DEFAULT_PRESET
    length: int = DEFAULT_LENGTH

    def __post_init__(self) -> None:
        problems = policy_problems(self.preset, self.length)
        if problems:
            raise ValueError("; ".join(problems))

    def with_overrides(self, preset: str | None, length: int | None) -> PasswordPolicy:
        """This policy with what a secret's tags chose (``None``: keep this one's)."""
        return PasswordPolicy(preset or self.preset, self.length if length is None else length)


def policy_problems(preset: str, length: int) -> list[str]:
    """Why ``preset``/``length`` is not a policy; empty when it is."""
    problems = []
    if preset not in PRESETS:
        problems.append(f"password preset must be one of {', '.join(PRESETS)}")
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        problems.append(f"password length must be {MIN_LENGTH}-{MAX_LENGTH}")
    return problems


DEFAULT_POLICY = PasswordPolicy()


def generate_password(policy: PasswordPolicy | None = None) -> SecretValue:
    """Return a password drawn with ``secrets`` that follows ``policy`` (default: url-safe, 40).

    The first character is a letter and every class appears at least once; retrying the draw
    until both hold keeps the distribution uniform over the accepted passwords.
    """
    policy = policy or DEFAULT_POLICY
    preset = PRESETS[policy.preset]
    alphabet = preset.alphabet
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(policy.length))
        if candidate[0] in string.ascii_letters and all(
                any(ch in cls for ch in candidate) for cls in preset.classes):
            return SecretValue(candidate)
