"""Logging and tracing set-up, done once at the edge and never by the core.

structlog renders every record, the core's stdlib ``logging`` ones included, as one JSON
line, carrying the context bound in contextvars (rotation id, vault, secret, step). The
formatter goes onto the root logger's handlers, so in Azure the output still flows through
the handler the Functions worker installs; elsewhere a stdout handler is added.

Tracing exports to Application Insights only when ``APPLICATIONINSIGHTS_CONNECTION_STRING``
is set; otherwise no provider is installed and the core's spans cost nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

_SENSITIVE_KEYS = frozenset({"password", "value", "token", "secret_value", "plaintext"})
_lock = threading.Lock()
_state: dict[str, bool] = {"logging": False, "tracing": False}


def _redact_sensitive_keys(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A last line of defence: a field named like a secret is never rendered."""
    for key in _SENSITIVE_KEYS.intersection(event_dict):
        event_dict[key] = "<redacted>"
    return event_dict


def _processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_sensitive_keys,
    ]


def json_formatter() -> logging.Formatter:
    """The formatter that renders any stdlib record as one JSON line."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
    )


def configure_logging(level: str | None = None) -> None:
    """Install JSON logging once per process; a call with ``level`` sets the level.

    Handlers call this with no level at the start of every invocation (so logging works
    before settings are read); that must not undo ``ROTATOR_LOG_LEVEL``, so only the
    composition root, which has read the settings, passes one.
    """
    root = logging.getLogger()
    with _lock:
        if not _state["logging"]:
            structlog.configure(
                processors=[*_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
                logger_factory=structlog.stdlib.LoggerFactory(),
                wrapper_class=structlog.stdlib.BoundLogger,
                cache_logger_on_first_use=True,
            )
            if not root.handlers:
                root.addHandler(logging.StreamHandler(sys.stdout))
            for handler in root.handlers:
                handler.setFormatter(json_formatter())
            _state["logging"] = True
            level = level or "INFO"
            # The SDKs' HTTP logging is noisy and carries URLs, never bodies; keep it at WARNING.
            logging.getLogger("azure").setLevel(logging.WARNING)
        if level is None:
            return
        logging.getLogger("rotation").setLevel(level)
        logging.getLogger("handlers").setLevel(level)
        root.setLevel(min(root.level or logging.WARNING, logging.getLevelName(level)))


def configure_tracing(connection_string: str | None) -> bool:
    """Export spans and logs to Application Insights when a connection string is set.

    Returns True when an exporter was installed. Without a connection string nothing is
    exported and nothing is installed.
    """
    if not connection_string:
        return False
    with _lock:
        if _state["tracing"]:
            return True
        from azure.monitor.opentelemetry import configure_azure_monitor
        from opentelemetry.sdk.resources import Resource

        # The distro's default detectors include azure_vm, which asks the VM metadata
        # endpoint (169.254.169.254) at start-up: a Functions app is no VM, so that is a
        # wasted round trip (or a timeout) on every cold start. An operator's choice stands.
        os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_app_service")
        options: dict[str, Any] = {}
        if not os.environ.get("OTEL_TRACES_SAMPLER"):
            # The distro's default samples at most 5 traces a second, and starts with an empty
            # budget, so a lone rotation's trace could be dropped. Rotations are rare and
            # each one matters: keep them all unless the operator chose a sampler.
            options["sampling_ratio"] = 1.0
        configure_azure_monitor(
            connection_string=connection_string,
            logger_name="rotation",
            resource=Resource.create({"service.name": "akv-rotator"}),
            **options,
        )
        _state["tracing"] = True
        return True


def reset_for_tests() -> None:
    """Forget what was configured, so a test can configure again from scratch."""
    with _lock:
        _state["logging"] = False
        _state["tracing"] = False
    structlog.reset_defaults()
