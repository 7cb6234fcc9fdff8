"""A real NetBox for the tests: NetBox 4.7.3 from PyPI, served by gunicorn over HTTPS on loopback.

NetBox needs Python >= 3.12 and pins its whole dependency tree (Django 6.1, gunicorn 26,
psycopg-c built from source), so it lives in a virtualenv of its own, built once per machine
outside the repository and reused::

    ${ROTATOR_TEST_NETBOX_HOME:-${XDG_CACHE_HOME:-~/.cache}/akv-rotator/netbox-4.7.3}/
        venv/            NetBox's Python 3.12 virtualenv (about 550 MB)
        venv/.installed  stamp, written last: the venv is complete and holds NETBOX_REQUIREMENT
        pip.log          the last build's pip output

``python -m tests.support.netbox install`` (``scripts/install-netbox.sh``, ``make netbox-deps``,
which ``make test`` runs) builds it; it is a no-op when the stamp is there. The fixture never
installs anything: it only starts things, and fails with the command to run if the venv is
missing.

NetBox's 336 migrations take 5 to 8 minutes of CPU. They run once per NetBox version, by
``python -m tests.support.netbox build-dump``, which writes ``netbox-<version>.sql.gz`` beside
this file (a plain ``pg_dump``, 85 KB gzipped, reproducible, committed). A session restores it
into a fresh database in about 3 s. The dump holds only what the migrations create: the fixture
adds the superuser and its v2 token itself (``netbox_bootstrap.py``), in the same process that
checks that no migration is missing, running in parallel with gunicorn's start-up. A dump that
does not match the installed NetBox fails the session with the command that rebuilds it; it is
not rebuilt on the fly, because that would cost minutes on every fresh machine (and CI) until
someone commits the result.

A session's NetBox (``running_netbox``):

- PostgreSQL: the session's cluster (``tests/support/postgres.py``); role and database
  ``netbox``, reached over the Unix socket (trusted), statement logging off for that role so
  NetBox's traffic does not flood the log that other tests read;
- Redis: Debian's ``redis-server`` on a free loopback port, no persistence, in the session's
  temporary directory;
- gunicorn 26 (NetBox's own), one worker with four threads, TLS with a certificate for
  ``127.0.0.1`` and ``localhost`` from a throwaway CA (trustme): clients verify against
  ``NetBoxServer.ca_path``, as the rotator verifies every endpoint that carries credentials.
  No control socket (gunicorn 26 otherwise creates ``~/.gunicorn/gunicorn.ctl``), and ``HOME``
  points into the temporary directory, so nothing is left behind.

Everything is stopped by PID and waited for when the session ends.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import requests
import trustme
from psycopg import sql

from tests.support.postgres import PostgresServer, find_pg_bin, free_port, running_postgres

NETBOX_VERSION = "4.7.3"
NETBOX_REQUIREMENT = f"netbox=={NETBOX_VERSION}"
HERE = Path(__file__).resolve().parent
DUMP_PATH = HERE / f"netbox-{NETBOX_VERSION}.sql.gz"
CONFIG_PATH = HERE / "netbox_config.py"
BOOTSTRAP_PATH = HERE / "netbox_bootstrap.py"

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "Admin-Passw0rd-123"
DB_NAME = "netbox"
DB_ROLE = "netbox"
# NetBox answers its first request 10-14 s after gunicorn starts on this kind of machine.
START_TIMEOUT = 90.0
# A fixed psql \restrict key keeps pg_dump's output byte-for-byte reproducible (it is random by
# default). The key guards restores of dumps from untrusted servers; ours come from a throwaway one.
_RESTRICT_KEY = "akvrotatornetboxdump"
# Every timestamp in the dump is pinned to this, so that a rebuilt dump differs only if what the
# migrations create does (see _pin_timestamps).
_PINNED_TIME = "2000-01-01 00:00:00+00"
_PROBE = (
    "import ensurepip, json, os, sys, sysconfig, venv; "
    "print(json.dumps({'version': list(sys.version_info[:2]), 'executable': sys.executable, "
    "'headers': os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))}))"
)


class NetBoxUnavailable(RuntimeError):
    """NetBox cannot be installed or started here; the message says what to install or run."""


class NetBoxAPIError(RuntimeError):
    """A helper's REST call got an answer it did not expect (status and body in the message)."""


def netbox_home() -> Path:
    """Where NetBox's virtualenv lives: per machine and per version, never in the repository."""
    override = os.environ.get("ROTATOR_TEST_NETBOX_HOME")
    if override:
        return Path(override).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "akv-rotator" / f"netbox-{NETBOX_VERSION}"


# ---------------------------------------------------------------------------------------------
# NetBox's virtualenv


@dataclass(frozen=True)
class NetBoxInstall:
    """NetBox's virtualenv under ``home``; complete only when its stamp names our pin."""

    home: Path

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def stamp(self) -> Path:
        return self.venv / ".installed"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def ready(self) -> bool:
        try:
            stamped = self.stamp.read_text().strip() == NETBOX_REQUIREMENT
        except FileNotFoundError:
            return False
        # The venv's python is a symlink to the interpreter it was built with (a pyenv version
        # can be uninstalled); a dangling one means rebuilding.
        return stamped and self.python.exists()


def installed_netbox(home: Path | None = None) -> NetBoxInstall | None:
    """The complete virtualenv, or ``None`` when ``install`` has not run (or did not finish)."""
    install = NetBoxInstall(home or netbox_home())
    return install if install.ready() else None


def find_python312() -> Path:
    """A working Python 3.12 with venv and headers (psycopg-c compiles against them).

    ``python3.12`` on PATH may be a pyenv shim that exits with "command not found" unless that
    version is selected, so every candidate is run, not just found: ``$ROTATOR_TEST_NETBOX_PYTHON``
    alone if set; else ``python3.12`` on PATH, pyenv's 3.12.x (newest first), then
    ``/usr/local/bin`` and ``/usr/bin``.
    """
    override = os.environ.get("ROTATOR_TEST_NETBOX_PYTHON")
    candidates: list[str] = []
    if override:
        candidates.append(override)
    else:
        if found := shutil.which("python3.12"):
            candidates.append(found)
        pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        pyenvs = sorted((pyenv_root / "versions").glob("3.12*/bin/python3.12"),
                        key=lambda p: _version_key(p.parent.parent.name), reverse=True)
        candidates += [str(p) for p in pyenvs]
        candidates += ["/usr/local/bin/python3.12", "/usr/bin/python3.12"]
    rejected: list[str] = []
    for candidate in dict.fromkeys(candidates):
        if not Path(candidate).exists() and not shutil.which(candidate):
            continue
        try:
            probe = subprocess.run([candidate, "-c", _PROBE], capture_output=True, text=True,
                                   timeout=60, check=False)
        except OSError as exc:
            rejected.append(f"{candidate}: {exc}")
            continue
        if probe.returncode != 0:
            rejected.append(f"{candidate}: {(probe.stderr.strip().splitlines() or ['failed'])[-1]}")
            continue
        facts = json.loads(probe.stdout)
        if facts["version"] != [3, 12]:
            rejected.append(f"{candidate}: Python {facts['version']}, not 3.12")
        elif not facts["headers"]:
            rejected.append(f"{candidate}: no Python.h (install python3.12-dev)")
        else:
            return Path(facts["executable"])
    detail = "".join(f"\n  rejected {line}" for line in rejected)
    tried = (f"ROTATOR_TEST_NETBOX_PYTHON={override}" if override else
             "python3.12 on PATH, pyenv's versions/3.12*, /usr/local/bin and /usr/bin")
    raise NetBoxUnavailable(
        "NetBox 4.7 needs Python 3.12 with venv, ensurepip and its C headers, and none was found "
        f"(tried {tried}). Install one (`pyenv install 3.12`, or python3.12, python3.12-venv and "
        f"python3.12-dev where the distribution packages them) or point ROTATOR_TEST_NETBOX_PYTHON "
        f"at it.{detail}"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise builders (two terminals running ``make test`` at once)."""
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install_netbox(home: Path | None = None, *,
                   echo: Callable[[str], None] = print) -> NetBoxInstall:
    """Build NetBox's virtualenv unless its stamp says it is already complete.

    An interrupted build leaves no stamp, so the next call deletes the half-built venv and
    starts again. pip's output goes to ``home/pip.log`` and is shown only on failure: the
    machine's pip configuration prints a warning per package that buries everything else.
    """
    install = NetBoxInstall(home or netbox_home())
    if install.ready():
        echo(f"netbox: {NETBOX_REQUIREMENT} already installed in {install.venv}")
        return install
    install.home.mkdir(parents=True, exist_ok=True)
    with _exclusive(install.home / ".lock"):
        if install.ready():
            return install
        for tool, package in (("gcc", "gcc"), ("pg_config", "libpq-dev")):
            if shutil.which(tool) is None:
                raise NetBoxUnavailable(
                    f"{tool} not found: NetBox's psycopg[c] compiles from source; install the "
                    f"Debian package {package} (scripts/install-system-deps.sh does)")
        python = find_python312()
        shutil.rmtree(install.venv, ignore_errors=True)
        started = time.monotonic()
        echo(f"netbox: building {install.venv} with {python} (pip takes 1-2 minutes)")
        subprocess.run([str(python), "-m", "venv", str(install.venv)], check=True)
        log = install.home / "pip.log"
        with log.open("w") as out:
            pip = subprocess.run(
                [str(install.python), "-m", "pip", "install", "--disable-pip-version-check",
                 NETBOX_REQUIREMENT],
                stdout=out, stderr=subprocess.STDOUT, check=False,
            )
        if pip.returncode != 0:
            raise NetBoxUnavailable(f"pip install {NETBOX_REQUIREMENT} failed (full log: {log}):\n"
                                    + _tail(log, 30))
        install.stamp.write_text(NETBOX_REQUIREMENT + "\n")
        echo(f"netbox: installed {NETBOX_REQUIREMENT} in {time.monotonic() - started:.0f} s")
    return install


# ---------------------------------------------------------------------------------------------
# Redis, the database, the dump


def find_redis_server() -> Path:
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        raise NetBoxUnavailable("redis-server not found: install the Debian package redis-server "
                                "(scripts/install-system-deps.sh does)")
    return Path(found)


@contextmanager
def running_redis(base: Path) -> Iterator[int]:
    """A throwaway Redis on a free loopback port (no RDB, no AOF); yields the port."""
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = base / "redis.log"
    process = subprocess.Popen(
        [str(find_redis_server()), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(base), "--daemonize", "no", "--protected-mode", "yes",
         "--logfile", str(log)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not _redis_pong(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise NetBoxUnavailable(f"redis-server did not start on port {port}:\n{_tail(log)}")
            time.sleep(0.05)
        yield port
    finally:
        _stop(process, signal.SIGTERM, grace=10)


def _redis_pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _create_database(postgres: PostgresServer) -> str:
    """Role and database ``netbox`` on the session cluster; the owner's socket conninfo."""
    with psycopg.connect(postgres.admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DB_NAME)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(DB_ROLE)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(DB_ROLE)))
        # NetBox's queries and the restore would otherwise fill the log_statement=all log that
        # other tests search for leaked passwords.
        conn.execute(sql.SQL("ALTER ROLE {} SET log_statement = 'none'").format(sql.Identifier(DB_ROLE)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(DB_NAME), sql.Identifier(DB_ROLE)))
    return f"host={postgres.socket_dir} port={postgres.port} user={DB_ROLE} dbname={DB_NAME}"


def _restore_dump(pg_bin: Path, conninfo: str, dump: Path) -> None:
    """Load the plain-SQL dump as the database owner (ltree is a trusted extension, PG >= 13)."""
    restore = subprocess.run(
        [str(pg_bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", "-"],
        input=gzip.decompress(dump.read_bytes()), capture_output=True, check=False,
    )
    if restore.returncode != 0:
        raise NetBoxUnavailable(f"restoring {dump.name} failed:\n"
                                + restore.stderr.decode(errors="replace")[-2000:])


def build_dump(install: NetBoxInstall, out: Path = DUMP_PATH, *,
               echo: Callable[[str], None] = print) -> Path:
    """Migrate an empty database with the installed NetBox and write it as gzipped plain SQL.

    Runs on a throwaway cluster of its own. The output is reproducible: same NetBox, same bytes.
    """
    pg_bin = _require_pg_bin()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="akv-rotator-netbox-dump-") as tmp, \
            running_postgres(pg_bin) as postgres, running_redis(Path(tmp) / "redis") as redis_port:
        base = Path(tmp)
        conninfo = _create_database(postgres)
        env = _netbox_env(install, _netbox_root(base), postgres, redis_port)
        echo(f"netbox: migrating an empty database with {NETBOX_REQUIREMENT} (5-9 minutes)")
        migrate = subprocess.run([str(install.bin("netbox")), "migrate", "--no-input"], env=env,
                                 cwd=base, capture_output=True, text=True, check=False)
        if migrate.returncode != 0:
            raise NetBoxUnavailable("netbox migrate failed:\n" + migrate.stdout[-2000:]
                                    + migrate.stderr[-3000:])
        _pin_timestamps(conninfo)
        dump = _dump(pg_bin, conninfo)
    out.write_bytes(gzip.compress(dump, compresslevel=9, mtime=0))
    echo(f"netbox: wrote {out} ({out.stat().st_size // 1024} KB) in {time.monotonic() - started:.0f} s")
    return out


def _pin_timestamps(conninfo: str) -> None:
    """Set every timestamp the migrations wrote to one instant, so rebuilds give the same bytes.

    Django records when each migration ran; data migrations stamp ``created``/``last_updated``
    on the rows they add (module type profiles, for one).
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type = 'timestamp with time zone' "
            "ORDER BY table_name, column_name").fetchall()
        for table, column in columns:
            conn.execute(sql.SQL("UPDATE {} SET {} = %s WHERE {} IS NOT NULL").format(
                sql.Identifier(table), sql.Identifier(column), sql.Identifier(column)),
                (_PINNED_TIME,))


def _dump(pg_bin: Path, conninfo: str) -> bytes:
    return subprocess.run(
        [str(pg_bin / "pg_dump"), "--no-owner", "--no-privileges", "--format=plain",
         f"--restrict-key={_RESTRICT_KEY}", "-d", conninfo],
        capture_output=True, check=True,
    ).stdout


def _require_pg_bin() -> Path:
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise NetBoxUnavailable("PostgreSQL server binaries not found: run "
                                "scripts/install-system-deps.sh or set ROTATOR_TEST_PG_BIN")
    return pg_bin


def _netbox_root(base: Path) -> Path:
    """A NETBOX_ROOT with our configuration; media, scripts and reports land here too."""
    root = base / "netbox-root"
    (root / "conf").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CONFIG_PATH, root / "conf" / "configuration.py")
    return root


def _netbox_env(install: NetBoxInstall, root: Path, postgres: PostgresServer,
                redis_port: int) -> dict[str, str]:
    """The environment of every NetBox process: its venv first, nothing of the project's venv."""
    env = {key: value for key, value in os.environ.items()
           if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        PATH=f"{install.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(root),  # anything that writes under ~ (gunicorn, pip, Django) writes here
        NETBOX_ROOT=str(root),
        DJANGO_SETTINGS_MODULE="netbox.settings",
        ROTATOR_NETBOX_DB_HOST=str(postgres.socket_dir),
        ROTATOR_NETBOX_DB_PORT=str(postgres.port),
        ROTATOR_NETBOX_DB_NAME=DB_NAME,
        ROTATOR_NETBOX_REDIS_PORT=str(redis_port),
    )
    return env


# ---------------------------------------------------------------------------------------------
# The running server and its helpers


def auth_header(token: str) -> str:
    """The ``Authorization`` value NetBox expects: v2 ``nbt_...`` as Bearer, v1 as ``Token``."""
    return f"Bearer {token}" if token.startswith("nbt_") else f"Token {token}"


@dataclass(frozen=True)
class NetBoxServer:
    """A running NetBox over HTTPS, with a superuser and its v2 token, and helpers for tests.

    The helpers act as the admin over the real REST API, except ``superuser=True``, which the
    API does not expose: that one flag is set in the database (``db_conninfo``).
    """

    url: str  # https://127.0.0.1:<port>, no trailing slash
    ca_path: Path  # the throwaway CA that signed the server's certificate
    admin_id: int
    admin_token: str = field(repr=False)  # "nbt_<key>.<secret>", sent as "Bearer <it>"
    admin_password: str = field(repr=False)
    db_conninfo: str = field(repr=False)  # NetBox's database, as its owner, over the socket
    startup: dict[str, float] = field(default_factory=dict, compare=False)  # seconds per phase
    _http: requests.Session = field(default_factory=requests.Session, repr=False, compare=False)

    def request(self, method: str, path: str, *, token: str | None = None,
                json: Any = None, params: dict[str, Any] | None = None,
                authorization: str | None = None) -> requests.Response:
        """One verified HTTPS call to ``path`` (``/api/...``).

        Authenticated by ``token`` (scheme chosen by ``auth_header``) or, to test what NetBox
        makes of odd headers, by a literal ``authorization`` value.
        """
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = auth_header(token)
        if authorization is not None:
            headers["Authorization"] = authorization
        return self._http.request(method, f"{self.url}{path}", headers=headers, json=json,
                                  params=params, verify=str(self.ca_path), timeout=60)

    def _as_admin(self, method: str, path: str, *, expect: int, json: Any = None,
                  params: dict[str, Any] | None = None) -> Any:
        response = self.request(method, path, token=self.admin_token, json=json, params=params)
        if response.status_code != expect:
            raise NetBoxAPIError(f"{method} {path} as admin: {response.status_code} "
                                 f"{response.text[:500]} (expected {expect})")
        return response.json() if response.content else None

    def create_user(self, username: str, password: str | None = None, *,
                    superuser: bool = False) -> int:
        """A new user's id. Without ``password`` one is generated (the API requires one)."""
        if password is None:
            password = f"Pw1-{secrets.token_urlsafe(18)}"
        user = self._as_admin("POST", "/api/users/users/", expect=201,
                              json={"username": username, "password": password})
        user_id = int(user["id"])
        if superuser:
            with psycopg.connect(self.db_conninfo, autocommit=True) as conn:
                conn.execute("UPDATE users_user SET is_superuser = true WHERE id = %s", (user_id,))
        return user_id

    def create_token(self, user_id: int, *, version: int = 2, description: str = "",
                     write_enabled: bool = True, expires: datetime | None = None,
                     allowed_ips: list[str] | None = None) -> tuple[int, str]:
        """Create a token for ``user_id`` as the admin; its id and full plaintext.

        The plaintext is what goes after the scheme in ``Authorization``: ``nbt_<key>.<secret>``
        for v2, the 40 characters for v1. NetBox returns it only in this response.
        """
        body: dict[str, object] = {"user": user_id, "version": version,
                                   "description": description, "write_enabled": write_enabled}
        if expires is not None:
            body["expires"] = expires.isoformat()
        if allowed_ips is not None:
            body["allowed_ips"] = allowed_ips
        token = self._as_admin("POST", "/api/users/tokens/", expect=201, json=body)
        return int(token["id"]), token_plaintext(token)

    def tokens(self, user_id: int) -> list[dict[str, Any]]:
        """Every token of ``user_id`` as the API lists it (all pages)."""
        results: list[dict[str, Any]] = []
        page = self._as_admin("GET", "/api/users/tokens/", expect=200,
                              params={"user_id": user_id, "limit": 100})
        results += page["results"]
        while page["next"]:
            response = self._http.get(page["next"], verify=str(self.ca_path), timeout=60,
                                      headers={"Authorization": auth_header(self.admin_token),
                                               "Accept": "application/json"})
            response.raise_for_status()
            page = response.json()
            results += page["results"]
        return results

    def authenticates(self, token: str) -> bool:
        """Whether NetBox accepts ``token``: 200 is yes, 403 is no, anything else is an error."""
        response = self.request("GET", "/api/authentication-check/", token=token)
        if response.status_code == 200:
            return True
        if response.status_code == 403:
            return False
        raise NetBoxAPIError(f"GET /api/authentication-check/: {response.status_code} {response.text[:500]}")

    def close(self) -> None:
        self._http.close()


def token_plaintext(created: dict[str, Any]) -> str:
    """The full plaintext from a token-create response (``nbt_<key>.<token>`` for v2)."""
    if created["version"] == 2:
        return f"nbt_{created['key']}.{created['token']}"
    return str(created["token"])


@contextmanager
def running_netbox(install: NetBoxInstall, postgres: PostgresServer, pg_bin: Path, *,
                   dump: Path = DUMP_PATH) -> Iterator[NetBoxServer]:
    """Restore the dump into ``postgres``, start Redis and gunicorn, yield the server, stop all.

    The bootstrap (migration check, superuser, token) and gunicorn start at the same moment;
    both spend most of their time importing NetBox, and the machine has two cores.
    """
    if not dump.exists():
        raise NetBoxUnavailable(f"{dump} is missing: build it with `.venv/bin/python -m "
                                "tests.support.netbox build-dump` (5-9 minutes) and commit it")
    base = Path(tempfile.mkdtemp(prefix="akv-rotator-netbox-"))
    timings: dict[str, float] = {}
    clock = time.monotonic()
    try:
        with running_redis(base / "redis") as redis_port:
            timings["redis"] = time.monotonic() - clock
            conninfo = _create_database(postgres)
            _restore_dump(pg_bin, conninfo, dump)
            timings["restore"] = time.monotonic() - clock
            root = _netbox_root(base)
            env = _netbox_env(install, root, postgres, redis_port)
            certfile, keyfile, ca_path = _server_certificate(base / "tls")
            port = free_port()
            log = base / "gunicorn.log"
            with log.open("wb") as log_out:
                bootstrap = subprocess.Popen(
                    # -P: not tests/support on sys.path, where netbox.py would shadow NetBox's.
                    [str(install.python), "-P", str(BOOTSTRAP_PATH)],
                    env={**env, "ROTATOR_NETBOX_ADMIN_PASSWORD": ADMIN_PASSWORD}, cwd=base,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )
                gunicorn = subprocess.Popen(
                    [str(install.bin("gunicorn")), "--bind", f"127.0.0.1:{port}",
                     "--workers", "1", "--threads", "4", "--timeout", "120",
                     # 1 s: a worker otherwise lingers up to the graceful timeout on stop.
                     "--graceful-timeout", "1", "--certfile", str(certfile),
                     "--keyfile", str(keyfile), "--no-control-socket",
                     "--pid", str(base / "gunicorn.pid"), "--access-logfile", "-",
                     "--error-logfile", "-", "netbox.wsgi"],
                    env=env, cwd=base, stdin=subprocess.DEVNULL, stdout=log_out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )
            server: NetBoxServer | None = None
            try:
                admin = _bootstrap_result(bootstrap, dump)
                timings["bootstrap"] = time.monotonic() - clock
                url = f"https://127.0.0.1:{port}"
                _wait_until_answering(url, ca_path, gunicorn, log, deadline=clock + START_TIMEOUT)
                timings["first_reply"] = time.monotonic() - clock
                server = NetBoxServer(url=url, ca_path=ca_path, admin_id=int(admin["admin_id"]),
                                      admin_token=str(admin["admin_token"]),
                                      admin_password=ADMIN_PASSWORD, db_conninfo=conninfo,
                                      startup=timings)
                yield server
            finally:
                if server is not None:
                    server.close()
                _stop(bootstrap, signal.SIGKILL, grace=5)
                _stop(gunicorn, signal.SIGTERM, grace=20)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _bootstrap_result(bootstrap: subprocess.Popen[bytes], dump: Path) -> dict[str, Any]:
    try:
        out, err = bootstrap.communicate(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise NetBoxUnavailable(f"NetBox's bootstrap did not finish in {START_TIMEOUT:.0f} s") from exc
    if bootstrap.returncode != 0:
        raise NetBoxUnavailable("NetBox's bootstrap (tests/support/netbox_bootstrap.py) failed:\n"
                                + err.decode(errors="replace")[-3000:])
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    if "pending" in result:
        pending: list[str] = result["pending"]
        raise NetBoxUnavailable(
            f"{dump.name} does not match the installed {NETBOX_REQUIREMENT}: "
            f"{len(pending)} migration(s) not applied (first: {pending[0]}). Rebuild it with "
            "`.venv/bin/python -m tests.support.netbox build-dump` (5-9 minutes) and commit it; "
            "after changing NETBOX_VERSION run `make netbox-deps` first.")
    return result


def _wait_until_answering(url: str, ca_path: Path, gunicorn: subprocess.Popen[bytes], log: Path,
                          *, deadline: float) -> None:
    """Poll until NetBox gives any HTTP answer (``/api/status/`` says 403 without a token)."""
    with requests.Session() as probe:
        while True:
            if gunicorn.poll() is not None:
                raise NetBoxUnavailable(f"gunicorn exited with {gunicorn.returncode}:\n{_tail(log)}")
            try:
                probe.get(f"{url}/api/status/", verify=str(ca_path), timeout=5)
                return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise NetBoxUnavailable(f"NetBox did not answer on {url} within {START_TIMEOUT:.0f} s; "
                                        f"gunicorn's log ends:\n{_tail(log)}")
            time.sleep(0.25)


def _server_certificate(base: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1/localhost: (cert, key, CA) paths."""
    base.mkdir(parents=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_path = base / "server.crt", base / "server.key", base / "ca.pem"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    ca.cert_pem.write_to_path(str(ca_path))
    return cert, key, ca_path


def _stop(process: subprocess.Popen[Any], sig: signal.Signals, *, grace: float) -> None:
    """Signal our child by PID and wait; kill its process group if it outlives ``grace``."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # our own session: gunicorn and its workers
        except (ProcessLookupError, PermissionError):
            process.kill()
        process.wait(timeout=10)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} does not exist)"


# ---------------------------------------------------------------------------------------------
# Command line: install, build-dump, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.netbox",
                                     description=f"NetBox {NETBOX_VERSION} for the test suite.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="build NetBox's virtualenv (no-op when complete)")
    build = commands.add_parser("build-dump", help=f"migrate and write {DUMP_PATH.name} (installs first)")
    build.add_argument("--output", type=Path, default=DUMP_PATH, help="where to write (default: %(default)s)")
    commands.add_parser("serve", help="run NetBox on a throwaway PostgreSQL until Ctrl-C")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            install_netbox()
        elif args.command == "build-dump":
            build_dump(install_netbox(), args.output)
        else:
            _serve()
    except NetBoxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve() -> None:
    """For poking at NetBox by hand: prints the URL, CA and admin token, runs until Ctrl-C."""
    install = installed_netbox()
    if install is None:
        raise NetBoxUnavailable("NetBox's virtualenv is missing: run `make netbox-deps`")
    pg_bin = _require_pg_bin()
    # SIGTERM and SIGINT both unwind the context managers below, which stop what they started
    # (a background job of a non-interactive shell starts with SIGINT ignored).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with running_postgres(pg_bin) as postgres, running_netbox(install, postgres, pg_bin) as server:
        print(f"url      {server.url}\nca       {server.ca_path}\ntoken    {server.admin_token}\n"
              f"password {server.admin_password}\nstartup  "
              + ", ".join(f"{k} {v:.1f} s" for k, v in server.startup.items()), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    sys.exit(main())
