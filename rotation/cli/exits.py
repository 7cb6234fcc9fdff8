"""Exit codes of ``akv-rotator``, one meaning each, so scripts can branch on them.

====  =================================================================================
0     done, and nothing needs a person
1     failed: the command could not do what was asked, or what it reports failed (a
      rotation that failed, a plan with a failed check)
2     usage: bad arguments, an unknown vault, settings the rotator cannot use
3     needs attention: done, but something wants a person (a plan's warnings, a failed
      or parked rotation in ``status``, a stale DR file, a ``--wait`` that timed out)
====  =================================================================================
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    ATTENTION = 3


class CliError(Exception):
    """What went wrong, said to the operator on stderr, and the exit code it ends with.

    Messages come from the rotator's own errors or the API's answers, neither of which
    ever holds a secret value.
    """

    def __init__(self, message: str, code: Exit = Exit.FAILED) -> None:
        super().__init__(message)
        self.code = code


def worst(*codes: Exit) -> Exit:
    """The exit code of several outcomes: failed over attention over ok."""
    if Exit.FAILED in codes:
        return Exit.FAILED
    return Exit.ATTENTION if Exit.ATTENTION in codes else Exit.OK
