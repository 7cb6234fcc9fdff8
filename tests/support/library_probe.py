"""Run in a fresh interpreter whose ``sys.path`` starts with one azure-functions release:
index ``function_app``, then deliver every golden payload through that release's converter
to the registered function. Prints one JSON document: the library's version, the functions it
indexed, and for each payload what the converter made of it and the function's outcome line.

``python -m tests.support.library_probe`` (settings come from the environment).
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
from typing import Any

from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from tests.support.payloads import load_payload, payload_names


def main() -> None:
    import function_app

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    functions = sorted(f.get_function_name() for f in function_app.app.get_functions())
    outcomes: dict[str, Any] = {}
    for name in payload_names():
        event = EventGridEventInConverter.decode(meta.Datum(json.dumps(load_payload(name)), "json"),
                                                 trigger_metadata={})
        start = stream.tell()
        try:
            function_app.keyvault_events(event)
            raised = None
        except Exception as exc:
            raised = type(exc).__name__
        lines = [json.loads(line) for line in stream.getvalue()[start:].splitlines()
                 if line.startswith("{")]
        said = [line for line in lines if line.get("event") in ("event handled", "event ignored",
                                                                   "event rejected")]
        outcomes[name] = {"decoded_as": type(event).__name__, "raised": raised,
                          "outcomes": [(line.get("outcome"), line.get("reason") or line.get("detail"))
                                       for line in said]}
    print(json.dumps({"version": importlib.metadata.version("azure-functions"),
                      "functions": functions, "payloads": outcomes}))


if __name__ == "__main__":
    main()
