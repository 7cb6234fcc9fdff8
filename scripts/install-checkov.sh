#!/usr/bin/env bash
# Install checkov into its own virtualenv, .venv-checkov, pinned to one release.
#
# checkov cannot live in the project's .venv: its dependency tree (boto3 and friends) conflicts
# with the project's pins (kubernetes 37). So it gets a venv of its own, created only when it is
# missing or holds another checkov release; when the right one is there this takes well under a
# second and changes nothing.
#
#   bash scripts/install-checkov.sh
#   .venv-checkov/bin/checkov -d infra --framework terraform,kubernetes --quiet --compact \
#       --download-external-modules false
#
# Environment: PYTHON (default python3), CHECKOV_VENV (default .venv-checkov next to this
# script's parent), CHECKOV_VERSION (default the pin below).
set -euo pipefail

CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
PYTHON="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/.venv-checkov}"

installed_version() {
    # The version pip recorded in the venv, or nothing. Reading the metadata is instant;
    # running `checkov --version` would import the whole tool.
    "$VENV/bin/python" - <<'EOF' 2>/dev/null || true
from importlib.metadata import PackageNotFoundError, version
try:
    print(version("checkov"))
except PackageNotFoundError:
    pass
EOF
}

if [[ -x "$VENV/bin/python" ]]; then
    current="$(installed_version)"
    if [[ "$current" == "$CHECKOV_VERSION" && -x "$VENV/bin/checkov" ]]; then
        echo "checkov $CHECKOV_VERSION already installed in $VENV: nothing to do"
        exit 0
    fi
    if [[ -n "$current" ]]; then
        echo "checkov $current found in $VENV, want $CHECKOV_VERSION: reinstalling"
    else
        echo "$VENV exists without checkov: installing checkov $CHECKOV_VERSION"
    fi
else
    echo "creating $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
    echo "upgrading pip in $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

echo "installing checkov==$CHECKOV_VERSION into $VENV (a few minutes the first time)"
"$VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION"
echo "installed: $("$VENV/bin/checkov" --version)"
