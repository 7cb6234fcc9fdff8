"""Strong generated passwords that survive every place a database password travels.

The alphabet leaves out everything with a special meaning in libpq/URL connection strings,
``.pgpass`` (``:`` and ``\\``), MySQL option files, shells and JSON (quotes, ``@ / ? # % & =``,
spaces), so a rotated password never needs escaping downstream.
"""

from __future__ import annotations

import secrets
import string

from rotation.secret_value import SecretValue

SAFE_PUNCTUATION = "-_.~"
ALPHABET = string.ascii_letters + string.digits + SAFE_PUNCTUATION
DEFAULT_LENGTH = 40  # about 240 bits from a 66-symbol alphabet
MIN_LENGTH = 16

_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, SAFE_PUNCTUATION)


def generate_password(length: int = DEFAULT_LENGTH) -> SecretValue:
    """Return a password drawn with ``secrets`` that holds every character class once at least.

    Many password policies demand upper, lower, digit and symbol; retrying the draw until all
    classes appear keeps the distribution uniform over the accepted passwords.
    """
    if length < MIN_LENGTH:
        raise ValueError(f"password length must be at least {MIN_LENGTH}, got {length}")
    while True:
        candidate = "".join(secrets.choice(ALPHABET) for _ in range(length))
        if all(any(ch in cls for ch in candidate) for cls in _CLASSES):
            return SecretValue(candidate)
