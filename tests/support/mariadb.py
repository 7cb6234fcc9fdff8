"""A throwaway MariaDB server from Debian's packages, on loopback with real passwords.

``running_mariadb()`` initialises a data directory with ``mariadb-install-db`` in a temporary
directory, starts ``mariadbd --no-defaults`` (nothing from ``/etc/mysql`` applies) on a free
port of 127.0.0.1, and on exit kills it and deletes the directory. As root the server runs as
the ``mysql`` user (``--user=mysql``, which mariadbd applies itself).

``mariadb_process()`` is the same server with its process in the test's hands
(:class:`MariaDBProcess`): stopped cleanly and started again on the same port and data
directory, or frozen (SIGSTOP) and thawed (SIGCONT), for the database-outage tests. Use a
server of the test module's own for that, never the session's.

Authentication and TLS:

- TCP needs TLS: ``require_secure_transport=ON``. The certificate is for ``127.0.0.1`` and
  ``localhost`` from a throwaway CA (trustme); clients verify it against ``ca_path`` and check
  the host name, as the rotator does in production. MariaDB refuses a login without TLS with
  the same ``1045 Access denied`` as a wrong password, so a refusal says nothing about which.
- The admin (``root``, or the invoking OS user when not root) logs in without a password over
  the Unix socket only (``unix_socket`` authentication; MariaDB counts the socket as secure
  transport). Over TCP it has no usable password.
- ``--skip-name-resolve``: a TCP client is ``'user'@'127.0.0.1'``, never ``'user'@'localhost'``,
  so create accounts for ``'%'`` or ``'127.0.0.1'``.

For tests about what reaches the server's logs, the general query log (every statement as
received, including failed ones) and the binary log (what replicas would replay) are on, each
readable as text. ``create_user`` sends a ``mysql_native_password`` hash computed here, so the
fixture's own setup never puts a plaintext password in either log.

Durability is off (no fsync of the redo log, binlog or data files, no doublewrite buffer): the
data is thrown away anyway.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pymysql
import trustme
from pymysql.constants import CR, ER

START_TIMEOUT = 30.0
SERVICE_USER = "mysql"
# Options for both mariadb-install-db (which bootstraps with them) and mariadbd.
_INNODB_OPTIONS = (
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=8M",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-flush-method=nosync",
    "--innodb-doublewrite=0",
)


@dataclass(frozen=True)
class MariaDBBinaries:
    mariadbd: Path
    install_db: Path
    binlog: Path  # mariadb-binlog (alias mysqlbinlog), to read the binary log as text


def find_mariadb_bin() -> MariaDBBinaries | None:
    """Debian's MariaDB server programs, or ``None`` when one is missing.

    ``ROTATOR_TEST_MARIADB_BIN`` names a directory searched first (mariadbd is in /usr/sbin,
    which is not on every user's PATH, so that is searched too).
    """
    dirs = [os.environ.get("ROTATOR_TEST_MARIADB_BIN", ""), os.environ.get("PATH", ""),
            "/usr/sbin", "/usr/bin"]
    search = os.pathsep.join(d for d in dirs if d)
    found = [_which(names, search) for names in (("mariadbd", "mysqld"),
                                                ("mariadb-install-db", "mysql_install_db"),
                                                ("mariadb-binlog", "mysqlbinlog"))]
    if None in found:
        return None
    mariadbd, install_db, binlog = (path for path in found if path is not None)
    return MariaDBBinaries(mariadbd=mariadbd, install_db=install_db, binlog=binlog)


def _which(names: Sequence[str], search: str) -> Path | None:
    for name in names:
        path = shutil.which(name, path=search)
        if path:
            return Path(path)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def native_password_hash(password: str) -> str:
    """``mysql_native_password``'s stored form, ``PASSWORD(pw)``, computed by the client.

    SHA-1 twice is that plugin's format, not a choice made here.
    """
    inner = hashlib.sha1(password.encode("utf-8")).digest()  # noqa: S324
    return "*" + hashlib.sha1(inner).hexdigest().upper()  # noqa: S324


@dataclass(frozen=True)
class MariaDBServer:
    """A running server: ``admin()`` is the passwordless admin over the socket."""

    port: int
    socket_path: Path
    ca_path: Path  # the CA that signed the server's certificate, for verified TLS
    directory: Path  # the temporary directory: data, logs, certificates
    admin_user: str
    binlog_tool: Path

    @property
    def general_log_path(self) -> Path:
        return self.directory / "general.log"

    @property
    def binlog_dir(self) -> Path:
        return self.directory / "binlog"

    def admin(self) -> pymysql.connections.Connection:
        """A new autocommit connection as the admin over the Unix socket (close it)."""
        return pymysql.connect(unix_socket=str(self.socket_path), user=self.admin_user,
                               autocommit=True, ssl_disabled=True, connect_timeout=5)

    def connect(self, user: str, password: str, *, tls: bool = True,
                ca_path: Path | None = None) -> pymysql.connections.Connection:
        """A fresh TCP login to 127.0.0.1, with verified TLS unless ``tls=False``.

        Verification uses ``ssl_ca`` with ``ssl_verify_cert``/``ssl_verify_identity``: PyMySQL
        1.x replaces an ``ssl={"ca": ...}`` dict with one built from the ``ssl_*`` arguments
        when either verify flag is given, silently dropping the CA.
        """
        if not tls:
            return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                                   ssl_disabled=True, connect_timeout=5)
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                               ssl_ca=str(ca_path or self.ca_path), ssl_verify_cert=True,
                               ssl_verify_identity=True, connect_timeout=5)

    def can_login(self, user: str, password: str) -> bool:
        """Try a fresh TLS login over TCP; True if accepted, False on "access denied" (1045).

        Anything else (TLS or certificate failure, server gone) raises.
        """
        try:
            with self.connect(user, password):
                return True
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == ER.ACCESS_DENIED_ERROR:
                return False
            raise

    def create_user(self, name: str, password: str, host: str = "%", *,
                    privileges: Sequence[str] = ()) -> None:
        """(Re)create ``'name'@'host'``; ``privileges`` such as ``"CREATE USER"`` are granted on
        ``*.*``. The password is sent as its hash, so it never appears in the logs."""
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@%s", (name, host))
            cur.execute("CREATE USER %s@%s IDENTIFIED BY PASSWORD %s",
                        (name, host, native_password_hash(password)))
            for privilege in privileges:
                cur.execute(f"GRANT {privilege} ON *.* TO %s@%s", (name, host))

    def drop_user(self, name: str, host: str = "%") -> None:
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@%s", (name, host))

    def version(self) -> str:
        """``SELECT VERSION()``, e.g. ``10.11.19-MariaDB-0+deb12u1-log``."""
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
        assert row is not None
        return str(row[0])

    def general_log(self) -> str:
        """The general query log: every statement as the server received it."""
        path = self.general_log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def binlog(self) -> str:
        """The binary log as ``mariadb-binlog`` prints it (row events decoded as comments)."""
        files = sorted(str(path) for path in self.binlog_dir.glob("mariadb-bin.[0-9]*"))
        if not files:
            return ""
        result = subprocess.run(
            [str(self.binlog_tool), "--no-defaults", "--base64-output=DECODE-ROWS", "--verbose",
             *files],
            check=True, capture_output=True, text=True, errors="replace",
        )
        return result.stdout


class MariaDBProcess:
    """The ``mariadbd`` of a server: started, stopped, frozen and thawed by the test.

    ``stop`` shuts down cleanly (SIGTERM: connections closed, the socket file removed) and
    ``start`` starts it again with the same command: same port, data directory and
    certificate, so a declared target reaches it again unchanged. ``freeze`` is SIGSTOP:
    the kernel still accepts TCP connections into the listen backlog, but nothing answers,
    like a stalled host; ``thaw`` (SIGCONT) lets it carry on where it stopped.
    """

    def __init__(self, server: MariaDBServer, command: Sequence[str]) -> None:
        self.server = server
        self._command = list(command)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Started and not exited (a frozen server is running)."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it accepts the admin; a no-op when running."""
        if self.running:
            return
        with open(self.server.directory / "mariadbd.out", "ab") as out:
            self._process = subprocess.Popen(self._command, stdout=out, stderr=subprocess.STDOUT)
        _wait_until_ready(self.server, self._process)

    def stop(self) -> None:
        """Shut down cleanly and wait for the process to exit; a no-op when stopped."""
        if self._process is None or not self.running:
            return
        self._process.send_signal(signal.SIGCONT)  # a frozen server cannot shut down
        self._process.terminate()
        self._process.wait(timeout=START_TIMEOUT)

    def freeze(self) -> None:
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, frozen or not (like ``pg_ctl -m immediate``: the data is deleted next)."""
        if self._process is not None and self.running:
            self._process.kill()
        if self._process is not None:
            self._process.wait(timeout=30)

    def _signal(self, which: signal.Signals) -> None:
        if self._process is not None and self.running:
            self._process.send_signal(which)


@contextmanager
def running_mariadb(binaries: MariaDBBinaries) -> Iterator[MariaDBServer]:
    """Start a fresh server in a temporary directory; kill it and remove everything afterwards."""
    with mariadb_process(binaries) as process:
        yield process.server


@contextmanager
def mariadb_process(binaries: MariaDBBinaries) -> Iterator[MariaDBProcess]:
    """Like :func:`running_mariadb`, with the server's process to stop, start, freeze, thaw."""
    base = Path(tempfile.mkdtemp(prefix="akv-rotator-mariadb-"))
    process: MariaDBProcess | None = None
    try:
        as_root = os.geteuid() == 0
        admin_user = "root" if as_root else pwd.getpwuid(os.geteuid()).pw_name
        run_as = [f"--user={SERVICE_USER}"] if as_root else []
        ca_path = _server_certificate(base)
        (base / "binlog").mkdir()
        if as_root:
            base.chmod(0o755)
            for path in (base, base / "binlog", base / "server.crt", base / "server.key"):
                shutil.chown(path, SERVICE_USER, SERVICE_USER)
        data = base / "data"
        install = subprocess.run(
            [str(binaries.install_db), "--no-defaults", f"--datadir={data}", *run_as,
             "--skip-test-db", "--skip-name-resolve", "--auth-root-authentication-method=socket",
             f"--auth-root-socket-user={admin_user}", *_INNODB_OPTIONS],
            check=False, capture_output=True, text=True,
        )
        if install.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{install.stdout}{install.stderr}")
        socket_path = base / "mysqld.sock"
        port = free_port()
        command = [
            str(binaries.mariadbd), "--no-defaults", f"--datadir={data}", *run_as,
            f"--socket={socket_path}", f"--pid-file={base / 'mysqld.pid'}",
            f"--port={port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
            f"--log-error={base / 'error.log'}",
            # Failed TLS handshakes count as connection errors; never block 127.0.0.1.
            "--max-connect-errors=1000000",
            f"--ssl-cert={base / 'server.crt'}", f"--ssl-key={base / 'server.key'}",
            "--require-secure-transport=ON",
            "--general-log=ON", f"--general-log-file={base / 'general.log'}", "--log-output=FILE",
            f"--log-bin={base / 'binlog' / 'mariadb-bin'}", "--server-id=1", "--sync-binlog=0",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
            *_INNODB_OPTIONS,
        ]
        server = MariaDBServer(port=port, socket_path=socket_path, ca_path=ca_path, directory=base,
                               admin_user=admin_user, binlog_tool=binaries.binlog)
        process = MariaDBProcess(server, command)
        process.start()
        yield process
    finally:
        if process is not None:
            process.kill()
        shutil.rmtree(base, ignore_errors=True)


def _wait_until_ready(server: MariaDBServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"mariadbd exited with {process.returncode}:\n{_error_log(server)}")
        try:
            server.admin().close()
            return
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] < CR.CR_ERROR_FIRST:  # the server answered: refused
                raise
            if time.monotonic() > deadline:
                raise RuntimeError(f"mariadbd did not accept connections within {START_TIMEOUT:.0f} s:"
                                   f"\n{_error_log(server)}") from None
            time.sleep(0.05)


def _error_log(server: MariaDBServer) -> str:
    path = server.directory / "error.log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else "(no error log)"


def _server_certificate(base: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1/localhost; returns the CA's PEM path."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(base / "server.crt"))
    server.private_key_pem.write_to_path(str(base / "server.key"))
    (base / "server.key").chmod(0o600)
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    return base / "ca.pem"
