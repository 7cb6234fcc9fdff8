"""Run the Jenkins twin standalone: ``python -m twins.jenkins --port 0 [--cert-dir DIR]``.

For the demo and for tests in other processes (they drive the twin through ``/_twin/...``).
Seeds two users: ``--user`` with one fresh API token, and ``--other-user`` with none. Once it
serves, prints exactly one JSON line on stdout, so a parent process can read it with one
``readline()`` (logs go to stderr)::

    {"url": "https://127.0.0.1:PORT/jenkins/", "user": "svc-rotator",
     "token": "11…", "otherUser": "alice", "ca": "/…/ca.pem"}

then serves until SIGINT or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from twins.http.cli import configure_logging, serve_until_signalled
from twins.jenkins.twin import JenkinsTwin


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m twins.jenkins", description="Jenkins API-token twin over HTTPS."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443, help="port; 0 picks a free one")
    parser.add_argument("--cert-dir", default=None, help="where to write ca.pem (default: a temp dir)")
    parser.add_argument("--context-path", default="/", help="where Jenkins is mounted, e.g. /jenkins/")
    parser.add_argument("--user", default="svc-rotator", help="the user that gets an API token")
    parser.add_argument("--other-user", default="alice", help="a second user, without tokens")
    parser.add_argument("--token-name", default="bootstrap", help="name of the seeded token")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Start the twin, print one JSON line saying how to reach it, and block until a signal."""
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    if args.user.lower() == args.other_user.lower():
        _parser().error("--user and --other-user must differ")
    twin = JenkinsTwin(host=args.host, port=args.port, cert_dir=args.cert_dir, context_path=args.context_path)
    twin.add_user(args.user)
    twin.add_user(args.other_user)
    token = twin.add_token(args.user, args.token_name)

    def announce() -> None:
        line = {
            "url": twin.url,
            "user": args.user,
            "token": token,
            "otherUser": args.other_user,
            "ca": str(twin.ca_path),
        }
        sys.stdout.write(json.dumps(line) + "\n")

    return serve_until_signalled(twin, announce)


if __name__ == "__main__":
    sys.exit(main())
