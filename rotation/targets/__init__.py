"""Targets: the real systems whose credentials akv-rotator rotates, one module per kind.

Each module imports its driver (psycopg, PyMySQL, an HTTP client) and nothing else does;
:mod:`rotation.targets.registry` maps a kind to its module and imports it only when a
secret of that kind is rotated.
"""
