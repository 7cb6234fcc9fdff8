"""Golden Key Vault event payloads, kept as JSON files under tests/payloads/ and loaded here only.

Files named ``cloudevents_*`` are in the CloudEvents 1.0 schema (Event Grid delivers that
schema when the subscription asks for it); the others in the Event Grid schema.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"


def load_payload(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/payloads/<name>.json``."""
    return copy.deepcopy(json.loads((PAYLOADS / f"{name}.json").read_text()))


def payload_names() -> list[str]:
    """Every golden payload, by the name :func:`load_payload` takes."""
    return sorted(path.stem for path in PAYLOADS.glob("*.json"))


def decode_event(payload: dict[str, Any]) -> func.EventGridEvent | func.CloudEvent:
    """Turn a wire payload into the function's argument exactly as the Python worker does:
    ``EventGridEvent``, or ``CloudEvent`` when the body carries ``specversion``."""
    datum = meta.Datum(json.dumps(payload), "json")
    event: func.EventGridEvent | func.CloudEvent = EventGridEventInConverter.decode(
        datum, trigger_metadata={})
    return event


def retarget(payload: dict[str, Any], *, vault: str, secret: str, version: str,
             topic: str | None = None) -> dict[str, Any]:
    """Point a golden payload at another vault, secret and version, keeping its key casing."""
    out = copy.deepcopy(payload)
    cloud = "specversion" in out
    out["subject"] = secret
    out["source" if cloud else "topic"] = topic or (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg"
        f"/providers/Microsoft.KeyVault/vaults/{vault}"
    )
    for key in list(out["data"]):
        norm = key.strip().lower()
        if norm == "vaultname":
            out["data"][key] = vault
        elif norm == "objectname":
            out["data"][key] = secret
        elif norm == "version":
            out["data"][key] = version
        elif norm == "id":
            out["data"][key] = f"https://{vault}.vault.azure.net/secrets/{secret}/{version}"
    out["time" if cloud else "eventTime"] = datetime.now().astimezone().isoformat()
    return out
