"""A worker in its own process: the Functions app handling deliveries, with an optional fault.

The fault-injection tests start this, let it raise or die (SIGKILL) at a chosen step
boundary, and then start another one to see the rotation resumed::

    python -m tests.support.worker --payload event.json [--repeat N] [--fault STEP:POINT:MODE]
    python -m tests.support.worker --sweep [--fault ...]

STEP is a journal step (prepared, applied, ...); POINT is ``before`` (the step has not started),
``effect`` (its effect happened, it is not journaled yet), ``journal`` (journaled) or a point
the engine names inside a step (``minted``: a token target's server answered); MODE is
``kill`` (SIGKILL, no clean-up at all) or ``raise`` (a TransientError out of the step).
Settings come from the environment, as in Azure. Prints one JSON line per delivery.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from rotation.errors import TransientError
from rotation.journal.model import RotationRecord, Step


class InjectedFault(TransientError):
    """The fault the tests inject; transient, as an infrastructure hiccup would be."""


class FaultObserver:
    """Fires once, at one boundary of one step."""

    def __init__(self, spec: str) -> None:
        step, point, mode = spec.split(":")
        self.step, self.point, self.mode = step, point, mode

    def before(self, step: Step, record: RotationRecord) -> None:
        self._maybe("before", step)

    def after_effect(self, step: Step, record: RotationRecord) -> None:
        self._maybe("effect", step)

    def after_journal(self, step: Step, record: RotationRecord) -> None:
        self._maybe("journal", step)

    def inside(self, step: Step, point: str, record: RotationRecord) -> None:
        self._maybe(point, step)

    def _maybe(self, point: str, step: Step) -> None:
        if (point, step) != (self.point, self.step):
            return
        if self.mode == "kill":
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(f"injected fault at {self.step}:{self.point}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payload", type=Path)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--fault")
    args = parser.parse_args()

    # Logs go to stderr, so stdout carries only this worker's one result line per delivery.
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))
    from handlers.services import set_step_observer

    if args.fault:
        set_step_observer(FaultObserver(args.fault))
    from azure.functions.timer import TimerRequest

    import function_app
    from tests.support.payloads import decode_event

    failures = 0
    for _ in range(args.repeat):
        try:
            if args.sweep:
                function_app.sweeper(TimerRequest(past_due=False))
            else:
                function_app.keyvault_events(decode_event(json.loads(args.payload.read_text())))
            print(json.dumps({"ok": True}), flush=True)
        except Exception as exc:
            failures += 1
            print(json.dumps({"ok": False, "error": type(exc).__name__}), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
