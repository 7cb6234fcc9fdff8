"""NetBox's configuration for the test suite: copied to ``$NETBOX_ROOT/conf/configuration.py``.

This file runs inside NetBox's own Python 3.12 virtualenv, never in the project's: the wheel
loads ``$NETBOX_ROOT/conf/configuration.py`` by file path. Whatever changes per session (the
database's socket directory and port, Redis's port) comes from ``ROTATOR_NETBOX_*``
environment variables that ``tests/support/netbox.py`` sets for the NetBox processes, so one
static file serves the dump builder, the bootstrap script and gunicorn alike.

``SECRET_KEY`` and ``API_TOKEN_PEPPERS`` are constants on purpose: a v2 token is stored as
HMAC-SHA256(pepper, plaintext), so a different pepper would turn every stored token into one
that no plaintext matches. Neither is a secret: this NetBox lives for one test session on
loopback.
"""

import os

_DB_HOST = os.environ["ROTATOR_NETBOX_DB_HOST"]  # the session PostgreSQL's Unix socket directory
_DB_PORT = os.environ["ROTATOR_NETBOX_DB_PORT"]
_DB_NAME = os.environ.get("ROTATOR_NETBOX_DB_NAME", "netbox")
_REDIS_PORT = int(os.environ.get("ROTATOR_NETBOX_REDIS_PORT", "6379"))

ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

# Over the Unix socket, where the test cluster trusts local users: no database password.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _DB_NAME,
        "USER": "netbox",
        "PASSWORD": "",
        "HOST": _DB_HOST,
        "PORT": _DB_PORT,
        "CONN_MAX_AGE": 300,
    }
}

REDIS = {
    "tasks": {"HOST": "127.0.0.1", "PORT": _REDIS_PORT, "USERNAME": "", "PASSWORD": "",
              "DATABASE": 0, "SSL": False},
    "caching": {"HOST": "127.0.0.1", "PORT": _REDIS_PORT, "USERNAME": "", "PASSWORD": "",
                "DATABASE": 1, "SSL": False},
}

SECRET_KEY = "akv-rotator-test-secret-key-not-for-production-0123456789abcdefghijklmnop"
# Required for v2 tokens ("Unable to save v2 tokens: API_TOKEN_PEPPERS is not defined.").
API_TOKEN_PEPPERS = {1: "akv-rotator-test-pepper-not-for-production-0123456789abcdefghijklmnop"}

# No outbound calls: the machine has no network beyond loopback and package registries.
CENSUS_REPORTING_ENABLED = False
ISOLATED_DEPLOYMENT = True
RELEASE_CHECK_URL = None

DEBUG = False
TIME_ZONE = "UTC"
