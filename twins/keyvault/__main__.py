"""Run the Key Vault twin standalone: ``python -m twins.keyvault --port 8443 --cert-dir DIR``.

For the demo and for tests in other processes (they drive it through ``/_twin/...``). Writes
``DIR/ca.pem``, prints the URL, the CA path and a one-line ``SecretClient`` hint (the first
line is always ``url=<url>`` so a parent process can read it, also with ``--port 0``), then
serves until SIGINT or SIGTERM. Every printed line is ``key=value`` (url, ca, topic, hint,
and ``limits=<JSON>`` when service limits are on).

``--limits`` enforces Key Vault's documented service limits (300 secret creates and 4,000
other transactions per vault per 10 seconds, then 429 ``Throttled``); any ``--limits-*``
option turns them on too, replacing one number or choice (see :mod:`twins.keyvault.limits`).
An admin client reads the served/refused counts at ``GET /_twin/limits`` and resets them with
``DELETE /_twin/limits``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields

from twins.http.cli import configure_logging, serve_until_signalled
from twins.keyvault.limits import WINDOW_MODES, ServiceLimits, parse_retry_after
from twins.keyvault.twin import KeyVaultTwin

_DEFAULT_LIMITS = ServiceLimits()


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
    limits = parser.add_argument_group(
        "service limits", "off unless --limits or any --limits-* option is given"
    )
    limits.add_argument(
        "--limits", action="store_true", help="enforce Key Vault's per-vault transaction limits"
    )
    limits.add_argument(
        "--limits-creates",
        "--limits-writes",
        dest="creates",
        type=int,
        metavar="N",
        help=f"set-secret requests per window (default {_DEFAULT_LIMITS.creates})",
    )
    limits.add_argument(
        "--limits-others",
        dest="others",
        type=int,
        metavar="N",
        help=f"all other requests per window (default {_DEFAULT_LIMITS.others})",
    )
    limits.add_argument(
        "--limits-window",
        dest="window",
        type=float,
        metavar="SECONDS",
        help=f"window in seconds (default {_DEFAULT_LIMITS.window:g})",
    )
    limits.add_argument(
        "--limits-mode", dest="mode", choices=WINDOW_MODES, help="sliding (default) or fixed windows"
    )
    limits.add_argument(
        "--limits-retry-after",
        dest="retry_after",
        type=_retry_after,
        metavar="{always,never,alternate,P}",
        help="when a 429 carries Retry-After: never (default, as observed), always, "
        "alternate, or with probability P",
    )
    limits.add_argument(
        "--limits-seed",
        dest="seed",
        type=int,
        metavar="N",
        help="seed for a Retry-After probability (default 0)",
    )
    return parser


def _retry_after(text: str) -> str | float:
    try:
        return parse_retry_after(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _limits(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ServiceLimits | None:
    """The limits the options ask for, or ``None`` when none was given."""
    options = {f.name: getattr(args, f.name) for f in fields(ServiceLimits)}
    given = {name: value for name, value in options.items() if value is not None}
    if not args.limits and not given:
        return None
    try:
        return ServiceLimits(**given)
    except ValueError as exc:
        parser.error(f"service limits: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    """Start the twin, print how to reach it, and block until a stop signal."""
    parser = _parser()
    args = parser.parse_args(argv)
    limits = _limits(parser, args)
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
        limits=limits,
    )

    def announce() -> None:
        print(f"url={twin.url}")
        print(f"ca={twin.ca_path}")
        print(f"topic={twin.topic}")
        print(
            f'hint=SecretClient("{twin.url}", credential, connection_verify="{twin.ca_path}", '
            "verify_challenge_resource=False)"
        )
        if limits is not None:
            print(f"limits={json.dumps(limits.to_json(), separators=(',', ':'))}")

    return serve_until_signalled(twin, announce)


if __name__ == "__main__":
    sys.exit(main())
