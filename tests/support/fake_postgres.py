"""A hostile PostgreSQL server: it refuses TLS and asks for a cleartext or MD5 password.

It speaks just enough of the frontend/backend protocol (v3) to play the man in the middle or
the impostor: answer ``N`` to an SSLRequest or GSSENCRequest, read the StartupMessage, send
``AuthenticationCleartextPassword`` (code 3) or ``AuthenticationMD5Password`` (code 5), then
record whatever the client sends back until it hangs up. A client that answers sends a
PasswordMessage (``p``) holding the password or its MD5 hash; one that refuses sends nothing.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CLEARTEXT = 3
MD5 = 5


@dataclass
class FakePostgres:
    """What the fake saw: every byte each connection sent, and the PasswordMessages in it."""

    port: int
    auth_code: int
    received: list[bytes] = field(default_factory=list)
    startups: int = 0

    @property
    def address(self) -> str:
        return f"postgresql://127.0.0.1:{self.port}/postgres"

    def password_messages(self) -> list[bytes]:
        """The PasswordMessages (``p`` frames) the clients sent after the auth request."""
        return [data for data in self.received if data.startswith(b"p")]


def _read_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("client hung up")
        data += chunk
    return data


def _serve_one(conn: socket.socket, fake: FakePostgres) -> None:
    conn.settimeout(5)
    try:
        while True:  # pre-startup requests: refuse TLS and GSS encryption
            length, code = struct.unpack("!ii", _read_exact(conn, 8))
            if code in (SSL_REQUEST, GSSENC_REQUEST) and length == 8:
                conn.sendall(b"N")
                continue
            _read_exact(conn, length - 8)  # the rest of the StartupMessage
            fake.startups += 1
            break
        if fake.auth_code == MD5:
            conn.sendall(b"R" + struct.pack("!ii", 12, MD5) + b"salt")
        else:
            conn.sendall(b"R" + struct.pack("!ii", 8, CLEARTEXT))
        answer = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
            if answer.startswith(b"p") and len(answer) >= 5:
                (size,) = struct.unpack("!i", answer[1:5])
                if len(answer) >= size + 1:
                    break
        fake.received.append(answer)
    except (ConnectionError, OSError, struct.error):
        fake.received.append(b"")
    finally:
        conn.close()


@contextmanager
def fake_postgres(auth_code: int) -> Iterator[FakePostgres]:
    """A fake on a free loopback port for the duration of the block."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    fake = FakePostgres(port=server.getsockname()[1], auth_code=auth_code)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            _serve_one(conn, fake)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()
