"""Run in a subprocess: configure tracing as the app would, make one rotation step, flush.

The global OpenTelemetry provider can be set once per process, so this cannot share the test
session's process. Prints the Application Insights envelopes the ingestion endpoint received.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received: list[dict[str, object]] = []
connected: list[str] = []


def _watch_connections(event: str, args: tuple[object, ...]) -> None:
    """Every address a socket of this process connects to (the audit hook sees them all,
    whichever library opens the socket)."""
    if event == "socket.connect" and len(args) > 1 and isinstance(args[1], tuple):
        connected.append(str(args[1][0]))


class Ingestion(BaseHTTPRequestHandler):
    """A stand-in for the Application Insights ingestion endpoint (``/v2.1/track``)."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        envelopes = json.loads(body)
        received.extend(envelopes)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"itemsReceived": len(envelopes),
                                     "itemsAccepted": len(envelopes), "errors": []}).encode())

    def log_message(self, *args: object) -> None:
        pass


def _has_span(name: str) -> bool:
    return any(isinstance(e.get("data"), dict) and e["data"].get("baseData", {}).get("name") == name
               for e in list(received))


def main() -> None:
    sys.addaudithook(_watch_connections)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingestion)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from opentelemetry import trace

    from handlers.observability import configure_tracing
    from rotation import telemetry

    connection = None
    if sys.argv[1:] == ["--with-connection-string"]:
        connection = ("InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                      f"IngestionEndpoint=http://127.0.0.1:{server.server_port}/")
    installed = configure_tracing(connection)
    with telemetry.rotation_context(rotation_id="probe-1", secret="probe-secret"), \
            telemetry.step("probe"):
        pass
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if flush is not None:
        flush()
        deadline = time.monotonic() + 20
        while installed and time.monotonic() < deadline and not _has_span("rotation/probe"):
            time.sleep(0.1)  # the exporter transmits on its own thread
    print(json.dumps({"installed": installed, "provider": type(provider).__name__,
                      "envelopes": received, "connected": sorted(set(connected))}))


if __name__ == "__main__":
    main()
