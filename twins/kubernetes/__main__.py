"""Run the Kubernetes twin standalone: ``python -m twins.kubernetes --port 0 [--cert-dir D] [--crd-dir D]``.

For the demo and for tests in other processes. Once it serves, prints exactly one JSON line on
stdout, so a parent process can read it with one ``readline()`` (logs go to stderr)::

    {"url": "https://127.0.0.1:PORT", "kubeconfig": "/…/kubeconfig-twin-admin",
     "token": "…", "ca": "/…/ca.pem"}

``token`` is a cluster-admin bearer token and ``kubeconfig`` a kubeconfig using it; then it
serves until SIGINT or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from twins.http.cli import configure_logging, serve_until_signalled
from twins.kubernetes.twin import DEFAULT_CRD_DIR, KubernetesTwin


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m twins.kubernetes", description="Kubernetes API server twin over HTTPS."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=6443, help="port; 0 picks a free one")
    parser.add_argument(
        "--cert-dir", default=None, help="where to write ca.pem and the kubeconfig (default: a temp dir)"
    )
    parser.add_argument(
        "--crd-dir",
        default=str(DEFAULT_CRD_DIR),
        help="ESO CRD files to validate against (default: ../shared/eso-crds next to the checkout)",
    )
    parser.add_argument("--no-validation", action="store_true", help="serve ESO kinds without CRD schemas")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Start the twin, print one JSON line saying how to reach it, and block until a signal."""
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    twin = KubernetesTwin(
        host=args.host,
        port=args.port,
        cert_dir=args.cert_dir,
        crd_dir=None if args.no_validation else args.crd_dir,
    )

    def announce() -> None:
        line = {
            "url": twin.url,
            "kubeconfig": str(twin.kubeconfig()),
            "token": twin.admin_token,
            "ca": str(twin.ca_path),
        }
        sys.stdout.write(json.dumps(line) + "\n")

    return serve_until_signalled(twin, announce)


if __name__ == "__main__":
    sys.exit(main())
