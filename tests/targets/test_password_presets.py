"""Every password preset logs in through every place a database password ends up.

The passwords are pasted *as they are*, without quoting or escaping, into what people
write by hand: libpq connection strings and URLs, ``.pgpass``, ``my.cnf``, JDBC URLs (read
by the real pgJDBC and MariaDB Connector/J drivers), shell variables and ``.env`` files
(run by bash and dash), and Kubernetes YAML (read by PyYAML, a YAML 1.1 reader like the
go-yaml under kubectl). Each place then logs in to the real server. For each preset the
passwords are a hand-built one that holds every character of the alphabet, the shortest and
longest allowed, and fresh draws of the default length, so a character that breaks a place
cannot hide behind luck.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pymysql
import pytest
import yaml

from rotation.passwords import MAX_LENGTH, MIN_LENGTH, PRESETS, PasswordPolicy, generate_password
from tests.support.mariadb import MariaDBServer
from tests.support.postgres import PostgresServer

JDBC_PROBE = Path(__file__).resolve().parents[1] / "support" / "jdbc" / "JdbcProbe.java"
JDBC_JARS = (Path("/usr/share/java/postgresql.jar"), Path("/usr/share/java/mariadb-java-client.jar"))
SHELLS = ("bash", "dash")


def sample_passwords(preset: str) -> list[str]:
    """The whole alphabet in one password, both length limits, and default-length draws."""
    alphabet = PRESETS[preset].alphabet
    every_character = "Q" + alphabet + alphabet[::-1]
    drawn = [generate_password(PasswordPolicy(preset, length)).reveal()
             for length in (MIN_LENGTH, MAX_LENGTH, 40, 40, 40)]
    return [every_character[:MAX_LENGTH], *drawn]


CASES = [(preset, index) for preset in PRESETS for index in range(6)]


@pytest.fixture(scope="module")
def passwords() -> dict[str, list[str]]:
    return {preset: sample_passwords(preset) for preset in PRESETS}


def _login_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def yaml_secret(user: str, password: str) -> dict[str, str]:
    """A Kubernetes Secret manifest written by hand, values unquoted, read back."""
    manifest = (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-db\ntype: Opaque\n"
                f"stringData:\n  username: {user}\n  password: {password}\n")
    document = yaml.safe_load(manifest)
    assert isinstance(document["stringData"]["password"], str), "read as a string"
    return {key: str(value) for key, value in document["stringData"].items()}


def run_shell(shell: str, script: str, env: dict[str, str] | None = None) -> bool:
    done = subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, **(env or {})})
    return done.returncode == 0 and done.stdout.strip() == "1"


def jdbc_logins(urls: list[str]) -> list[str]:
    java = shutil.which("java")
    missing = [str(jar) for jar in JDBC_JARS if not jar.exists()]
    if java is None or missing:
        pytest.fail(f"JDBC needs java and {', '.join(map(str, JDBC_JARS))}: run "
                    "scripts/install-system-deps.sh (default-jre-headless, "
                    "libpostgresql-jdbc-java, libmariadb-java)")
    done = subprocess.run([java, "-cp", os.pathsep.join(map(str, JDBC_JARS)), str(JDBC_PROBE)],
                          input="\n".join(urls) + "\n", capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.splitlines()


# -- PostgreSQL --------------------------------------------------------------------------------

def pg_places(server: PostgresServer, tmp: Path) -> dict[str, Callable[[str, str], bool]]:
    tls = f"sslmode=verify-full sslrootcert={server.ca_path}"
    where = f"host=127.0.0.1 port={server.port} dbname=postgres"

    def conninfo(user: str, password: str) -> bool:
        return _pg_connects(f"{where} user={user} password={password} {tls}")

    def url(user: str, password: str) -> bool:
        return _pg_connects(f"postgresql://{user}:{password}@127.0.0.1:{server.port}/postgres"
                            f"?sslmode=verify-full&sslrootcert={server.ca_path}")

    def pgpass(user: str, password: str) -> bool:
        passfile = tmp / f"{user}.pgpass"
        passfile.write_text(f"127.0.0.1:{server.port}:postgres:{user}:{password}\n")
        passfile.chmod(0o600)
        return _pg_connects(f"{where} user={user} passfile={passfile} {tls}")

    def shell_variable(user: str, password: str) -> bool:
        psql = f"psql '{where} user={user} {tls}' -XtAc 'SELECT 1'"
        return all(run_shell(shell, f"PGPASSWORD={password} {psql}") for shell in SHELLS)

    def env_file(user: str, password: str) -> bool:
        dotenv = tmp / f"{user}.env"
        dotenv.write_text(f"PGUSER={user}\nPGPASSWORD={password}\n")
        script = f"set -a; . {dotenv}; set +a; psql '{where} {tls}' -XtAc 'SELECT 1'"
        return all(run_shell(shell, script) for shell in SHELLS)

    def kubernetes_yaml(user: str, password: str) -> bool:
        data = yaml_secret(user, password)
        return _pg_connects(f"{where} {tls}", user=data["username"], password=data["password"])

    return {"libpq conninfo": conninfo, "URL": url, ".pgpass": pgpass,
            "shell variable": shell_variable, ".env file": env_file, "YAML": kubernetes_yaml}


def _pg_connects(conninfo: str, user: str | None = None, password: str | None = None) -> bool:
    try:  # psycopg leaves out keywords given as None
        with psycopg.connect(conninfo, connect_timeout=5, user=user, password=password) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError as exc:
        if "password authentication failed" in str(exc):
            return False
        raise


# -- MariaDB / MySQL ---------------------------------------------------------------------------

def mysql_places(server: MariaDBServer, tmp: Path) -> dict[str, Callable[[str, str], bool]]:
    client = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
    tls = f"--ssl-ca={server.ca_path} --ssl-verify-server-cert"
    where = f"-h 127.0.0.1 -P {server.port}"

    def my_cnf(user: str, password: str) -> bool:
        options = tmp / f"{user}.cnf"
        options.write_text(f"[client]\nuser={user}\npassword={password}\nhost=127.0.0.1\n"
                           f"port={server.port}\nssl-ca={server.ca_path}\nssl-verify-server-cert\n")
        return run_shell("sh", f"{client} --defaults-file={options} -NBe 'SELECT 1'")

    def pymysql_option_file(user: str, password: str) -> bool:
        options = tmp / f"{user}.pymysql.cnf"
        options.write_text(f"[client]\nuser={user}\npassword={password}\n")
        return _mysql_connects(server, read_default_file=str(options))

    def url(user: str, password: str) -> bool:
        # MySQL's own clients take no URL; applications read mysql:// URLs with urllib
        # (SQLAlchemy, dj-database-url), percent-decoding the password.
        parts = urlsplit(f"mysql://{user}:{password}@127.0.0.1:{server.port}/mysql")
        return _mysql_connects(server, user=unquote(parts.username or ""),
                               password=unquote(parts.password or ""))

    def shell_variable(user: str, password: str) -> bool:
        command = f"{client} {where} -u {user} {tls} -NBe 'SELECT 1'"
        return all(run_shell(shell, f"MYSQL_PWD={password} {command}") for shell in SHELLS)

    def shell_argument(user: str, password: str) -> bool:
        command = f"{client} {where} -u {user} -p{password} {tls} -NBe 'SELECT 1'"
        return all(run_shell(shell, command) for shell in SHELLS)

    def kubernetes_yaml(user: str, password: str) -> bool:
        data = yaml_secret(user, password)
        return _mysql_connects(server, user=data["username"], password=data["password"])

    return {"my.cnf": my_cnf, "option file via PyMySQL": pymysql_option_file, "URL": url,
            "shell variable": shell_variable, "shell argument": shell_argument,
            "YAML": kubernetes_yaml}


def _mysql_connects(server: MariaDBServer, **login: str) -> bool:
    try:
        with pymysql.connect(host="127.0.0.1", port=server.port, ssl_ca=str(server.ca_path),
                             ssl_verify_cert=True, ssl_verify_identity=True, connect_timeout=5,
                             **login) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            return bool(cur.fetchone() == (1,))
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] == 1045:  # access denied
            return False
        raise


# -- both servers --------------------------------------------------------------------------

@dataclass(frozen=True)
class Database:
    """A real server: make a login, the places that log in to it, and its JDBC URL."""

    create: Callable[[str, str], None]
    places: Callable[[Path], dict[str, Callable[[str, str], bool]]]
    jdbc_url: Callable[[str], str]  # without the password
    jdbc_refused: str  # what JdbcProbe prints for a wrong password


@pytest.fixture(params=["postgresql", "mariadb"])
def database(request: pytest.FixtureRequest) -> Database:
    if request.param == "postgresql":
        pg: PostgresServer = request.getfixturevalue("postgres")
        return Database(
            pg.create_role, lambda tmp: pg_places(pg, tmp),
            lambda user: (f"jdbc:postgresql://127.0.0.1:{pg.port}/postgres?user={user}"
                          f"&sslmode=verify-full&sslrootcert={pg.ca_path}"),
            "failed 28P01 org.postgresql.util.PSQLException")
    my: MariaDBServer = request.getfixturevalue("mariadb")
    return Database(
        my.create_user, lambda tmp: mysql_places(my, tmp),
        lambda user: (f"jdbc:mariadb://127.0.0.1:{my.port}/?user={user}&useSsl=true"
                      f"&serverSslCert={my.ca_path}"),
        "failed 28000 java.sql.SQLInvalidAuthorizationSpecException")


@pytest.mark.parametrize(("preset", "index"), CASES)
def test_each_preset_logs_in_from_every_place(
    preset: str, index: int, passwords: dict[str, list[str]], database: Database,
    tmp_path: Path,
) -> None:
    password = passwords[preset][index]
    user = _login_name("preset")
    database.create(user, password)
    places = database.places(tmp_path)
    failed = [name for name, logs_in in places.items() if not logs_in(user, password)]
    assert not failed, f"preset {preset} (sample {index}) did not log in through {failed}"
    # The places really check the password: a wrong one is refused by each.
    wrong = [name for name, logs_in in places.items() if logs_in(user, password[:-1] + "Z9")]
    assert not wrong


def test_every_preset_logs_in_through_the_jdbc_driver(
    passwords: dict[str, list[str]], database: Database,
) -> None:
    """pgJDBC and MariaDB Connector/J read the password from the URL's query, URL-decoded."""
    urls, expected = [], []
    for preset, samples in passwords.items():
        for password in samples:
            user = _login_name("jdbc")
            database.create(user, password)
            base = database.jdbc_url(user)
            urls += [f"{base}&password={password}", f"{base}&password={password}x"]
            expected += [f"{preset}: ok", f"{preset}: {database.jdbc_refused}"]
    presets = [line.split(": ", 1)[0] for line in expected]
    answers = [f"{preset}: {answer}" for preset, answer in
               zip(presets, jdbc_logins(urls), strict=True)]
    assert answers == expected
