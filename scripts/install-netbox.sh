#!/usr/bin/env bash
# Build NetBox's own Python 3.12 virtualenv for the test suite (tests/support/netbox.py), outside
# the repository: ${ROTATOR_TEST_NETBOX_HOME:-~/.cache/akv-rotator/netbox-<version>}/venv.
# Idempotent: a no-op (well under a second) once its stamp file is there; a cold build takes 1-2
# minutes of pip. Run by `make netbox-deps`, which `make test` depends on; needs the project's
# .venv (for the version pin's single home) and scripts/install-system-deps.sh's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m tests.support.netbox install
