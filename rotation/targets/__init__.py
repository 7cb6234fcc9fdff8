"""Targets: the real systems whose credentials akv-rotator rotates, one module per kind.

Each module imports its driver (psycopg, PyMySQL, an HTTP client) and nothing else does;
:mod:`rotation.catalogue` maps a kind to its module and imports it only when a secret of
that kind is rotated. :mod:`rotation.targets.definition` is the operator's declaration of a
target, and driver-free address checks (``pg_address``) run when the settings are read.
"""
