"""Collects everything the rotator said (log lines, HTTP bodies, spans) to search it for secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from azure.keyvault.secrets import SecretClient
from opentelemetry.sdk.trace import ReadableSpan

from handlers.observability import json_formatter


class CapturingHandler(logging.Handler):
    """Keeps every record, rendered by the project's own JSON formatter."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(json_formatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines]


@dataclass
class Said:
    """What the system under test emitted during one test."""

    log_lines: list[str]
    http_bodies: list[str] = field(default_factory=list)
    spans: list[ReadableSpan] = field(default_factory=list)

    def texts(self) -> Iterable[str]:
        yield from self.log_lines
        yield from self.http_bodies
        for span in self.spans:
            yield span.name
            yield json.dumps({k: str(v) for k, v in (span.attributes or {}).items()})
            for event in span.events:
                yield json.dumps({k: str(v) for k, v in (event.attributes or {}).items()})
            if span.status.description:
                yield span.status.description


def secret_material(client: SecretClient) -> set[str]:
    """Every value, and every password or token inside a JSON value, the vault ever held."""
    found: set[str] = set()
    for item in client.list_properties_of_secrets():
        for version in client.list_properties_of_secret_versions(item.name or ""):
            if not version.enabled:
                continue  # Key Vault refuses to read a disabled version (403)
            value = client.get_secret(version.name or "", version.version).value or ""
            found.add(value)
            try:
                document = json.loads(value)
            except ValueError:
                continue
            for key in ("password", "token"):
                if isinstance(document, dict) and isinstance(document.get(key), str):
                    found.add(document[key])
    return {item for item in found if len(item) >= 8}


def leaks(said: Said, secrets: set[str]) -> list[str]:
    """The secrets that appear anywhere in what was said (empty when nothing leaked)."""
    texts = list(said.texts())
    return sorted({secret[:4] + "..." for secret in secrets for text in texts if secret in text})
