"""Run the Key Vault twin standalone: ``python -m twins.keyvault --port 8443 --cert-dir DIR``.

For the demo and for tests in other processes (they drive it through ``/_twin/...``). Writes
``DIR/ca.pem``, prints the URL, the CA path and a one-line ``SecretClient`` hint (the first
line is always ``url=<url>`` so a parent process can read it, also with ``--port 0``), then
serves until SIGINT or SIGTERM. Every printed line is ``key=value`` (url, ca, topic, hint).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from twins.http.cli import configure_logging, serve_until_signalled
from twins.keyvault.twin import KeyVaultTwin


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m twins.keyvault", description="Key Vault (secrets) twin over HTTPS."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443, help="port; 0 picks a free one")
    parser.add_argument("--cert-dir", required=True, help="where to write ca.pem and server.pem")
    parser.add_argument("--vault-name", default="kv-twin")
    parser.add_argument("--event-url", default=None, help="POST Event Grid events here")
    parser.add_argument(
        "--token",
        action="append",
        dest="tokens",
        default=None,
        help="accept only this bearer token (repeatable); default: any non-empty token",
    )
    parser.add_argument("--delete-delay", type=float, default=0.0, help="seconds a delete takes")
    parser.add_argument("--subscription-id", default="00000000-0000-0000-0000-000000000000")
    parser.add_argument("--resource-group", default="rg-twin")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Start the twin, print how to reach it, and block until a stop signal."""
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    twin = KeyVaultTwin(
        vault_name=args.vault_name,
        host=args.host,
        port=args.port,
        cert_dir=args.cert_dir,
        event_url=args.event_url,
        accepted_tokens=args.tokens,
        delete_delay=args.delete_delay,
        subscription_id=args.subscription_id,
        resource_group=args.resource_group,
    )

    def announce() -> None:
        print(f"url={twin.url}")
        print(f"ca={twin.ca_path}")
        print(f"topic={twin.topic}")
        print(
            f'hint=SecretClient("{twin.url}", credential, connection_verify="{twin.ca_path}", '
            "verify_challenge_resource=False)"
        )

    return serve_until_signalled(twin, announce)


if __name__ == "__main__":
    sys.exit(main())
