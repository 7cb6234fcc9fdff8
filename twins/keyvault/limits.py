"""Key Vault's service limits: per-vault transaction quotas per window, refused with 429.

Off by default. With ``KeyVaultTwin(limits=ServiceLimits())`` (or ``python -m twins.keyvault
--limits``) the twin counts the transactions it serves per operation class and refuses those
beyond the quota with Key Vault's ``429 Throttled`` body, so a client's back-off can be
exercised against the numbers the service documents.

What Microsoft documents (MicrosoftDocs/azure-docs ``includes/key-vault-limits.md``, ms.date
05/28/2021, the table under "Secrets, managed storage account keys, and vault transactions";
live page https://learn.microsoft.com/azure/key-vault/general/service-limits):

====================================  =============================================================
Transactions type                     Maximum transactions allowed in 10 seconds, per vault per region
====================================  =============================================================
Secret CREATE secret                  300
All other transactions                4,000
====================================  =============================================================

``articles/key-vault/general/overview-throttling.md``: "When a service threshold is exceeded,
Key Vault limits any further requests from that client ..., returns HTTP status code 429 (Too
many requests), and the request fails. Failed requests that return a 429 do not count towards
the throttle limits tracked by Key Vault."

How the twin reads that (the inferences are marked):

- classes: only ``PUT /secrets/{name}`` (Set Secret, which creates a version) is a *create*;
  everything else the secrets API offers is *other*: get, list, list versions, update (PATCH
  only changes attributes of an existing version, it creates nothing), delete, get/list
  deleted, recover, purge. The two quotas are independent: a create does not also spend the
  4,000. (Inference from "All other transactions". The key table's note that thresholds "are
  weighted, and enforcement is on their sum" is about key operations; the twin has no keys.)
- what counts: every authenticated request that reaches the vault, whatever its outcome (a 404
  or 409 is still a transaction); a refused request is never counted, carried out or recorded
  as served (documented). The unauthenticated challenge probe and requests answered by an
  injected fault *before* processing count for nothing (inference: they never reached the
  vault). The subscription-wide limit (5x a vault's) is not modelled: a twin is one vault.
- window: **not documented** whether it slides or is fixed. "In a given 10-second interval"
  reads most naturally as "any 10-second interval", so the default is ``"sliding"``: a request
  is refused while ``quota`` requests of its class were served in the last ``window`` seconds.
  ``"fixed"`` (windows aligned to multiples of ``window`` on the clock) is there because a
  client should cope with either; it lets up to twice the quota through across a boundary.
- ``Retry-After``: Key Vault's documentation never mentions it; one captured real 429 had
  none (vcsjones/AzureSignTool#219, protocols.md section 2.7). ``retry_after`` chooses:
  ``"never"`` (default, as observed), ``"always"``, ``"alternate"`` (the first refusal carries
  it, the next does not, and so on), or a probability 0..1 drawn from a ``seed``-ed RNG. Its
  value is the whole number of seconds, rounded up, until the class has room again (sliding:
  until the oldest served request leaves the window; fixed: until the window ends).

Thread-safety: one lock per limiter; the check and the recording of a served request are one
step, so N concurrent writers get exactly ``quota`` admissions per window. Cost per request is
a deque append and amortised pops (sliding) or a counter (fixed). Time comes from the twin's
``clock``, so tests step it instead of sleeping.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

OperationClass = Literal["create", "other"]
WindowMode = Literal["sliding", "fixed"]
RetryAfterMode = Literal["always", "never", "alternate"]

OPERATION_CLASSES: tuple[OperationClass, ...] = get_args(OperationClass)
RETRY_AFTER_MODES: tuple[RetryAfterMode, ...] = get_args(RetryAfterMode)
WINDOW_MODES: tuple[WindowMode, ...] = get_args(WindowMode)

# (method, route kind) pairs that create a secret version; see twins.keyvault.routes._route_kind.
CREATE_ROUTES = frozenset({("PUT", "secret")})

# Float noise (0.1 + 10 - 5.1 = 5.000000000000001; a few ulps of an epoch time are ~1e-6 s)
# must not add a whole second to Retry-After: a wait this close above a whole second rounds down.
_RETRY_AFTER_SLACK = 1e-4


@dataclass(frozen=True)
class ServiceLimits:
    """Quotas per vault per window: Key Vault's documented numbers by default.

    ``creates`` is "Secret CREATE secret" (300), ``others`` "All other transactions" (4,000),
    ``window`` the interval in seconds (10). A quota of 0 refuses every request of its class.
    ``mode`` and ``retry_after``/``seed`` are the undocumented choices explained in
    :mod:`twins.keyvault.limits`.
    """

    creates: int = 300
    others: int = 4000
    window: float = 10.0
    mode: WindowMode = "sliding"
    retry_after: RetryAfterMode | float = "never"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.creates < 0 or self.others < 0:
            raise ValueError("quotas must be 0 or more")
        if not self.window > 0:
            raise ValueError("window must be more than 0 seconds")
        if self.mode not in WINDOW_MODES:
            raise ValueError(f"mode must be one of {', '.join(WINDOW_MODES)}")
        if isinstance(self.retry_after, str):
            if self.retry_after not in RETRY_AFTER_MODES:
                raise ValueError(f"retry_after must be one of {', '.join(RETRY_AFTER_MODES)} or 0..1")
        elif isinstance(self.retry_after, bool) or not 0 <= self.retry_after <= 1:
            raise ValueError("a retry_after probability must be from 0 to 1")

    def quota(self, operation: OperationClass) -> int:
        """How many requests of ``operation``'s class one window admits."""
        return self.creates if operation == "create" else self.others

    def to_json(self) -> dict[str, Any]:
        """The limits as the admin endpoint shows them."""
        return asdict(self)


def parse_retry_after(text: str) -> RetryAfterMode | float:
    """``always``/``never``/``alternate`` or a probability such as ``0.5`` (for the CLI)."""
    if text in RETRY_AFTER_MODES:
        return text  # narrowed to RetryAfterMode by the membership test
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected {', '.join(RETRY_AFTER_MODES)} or a probability, not {text!r}") from None


def classify(method: str, route_kind: str) -> OperationClass:
    """The documented class of a vault request: ``create`` for Set Secret, else ``other``."""
    return "create" if (method.upper(), route_kind) in CREATE_ROUTES else "other"


@dataclass(frozen=True)
class ThrottleCounts:
    """Requests of one class served (admitted) and refused with 429 since start or reset."""

    served: int = 0
    refused: int = 0


@dataclass(frozen=True)
class Refusal:
    """A throttled request: the ``Retry-After`` seconds to send, or ``None`` to send none."""

    retry_after: int | None


class _Window:
    """One class's admissions: timestamps (sliding) or a counter per window (fixed)."""

    def __init__(self) -> None:
        self.stamps: deque[float] = deque()
        self.fixed_index = 0
        self.fixed_count = 0
        self.served = 0
        self.refused = 0


class Limiter:
    """Admits or refuses vault requests per class; counts both. ``limits=None`` only counts.

    One per twin, i.e. per vault. Safe to call from every request thread.
    """

    def __init__(self, limits: ServiceLimits | None, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._windows = {operation: _Window() for operation in OPERATION_CLASSES}
        self._refusals = 0
        self._rng = random.Random(limits.seed if limits else 0)

    def admit(self, operation: OperationClass) -> Refusal | None:
        """Count a request of ``operation``'s class as served, or refuse it (``Refusal``)."""
        with self._lock:
            window = self._windows[operation]
            limits = self.limits
            if limits is None:
                window.served += 1
                return None
            now = self._clock()
            wait = self._wait(window, limits, operation, now)
            if wait is None:
                window.served += 1
                return None
            window.refused += 1
            self._refusals += 1
            return Refusal(self._retry_after(limits, wait))

    def _wait(
        self, window: _Window, limits: ServiceLimits, operation: OperationClass, now: float
    ) -> float | None:
        """Record an admission and return ``None``, or return the seconds until there is room."""
        quota = limits.quota(operation)
        if limits.mode == "fixed":
            index = math.floor(now / limits.window)
            if index != window.fixed_index:
                window.fixed_index, window.fixed_count = index, 0
            if window.fixed_count < quota:
                window.fixed_count += 1
                return None
            return (index + 1) * limits.window - now
        stamps = window.stamps
        cutoff = now - limits.window
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        if len(stamps) < quota:
            stamps.append(now)
            return None
        # Quota 0: nothing will ever leave the window; a whole window is the honest hint.
        return stamps[0] + limits.window - now if stamps else limits.window

    def _retry_after(self, limits: ServiceLimits, wait: float) -> int | None:
        policy = limits.retry_after
        if policy == "never":
            return None
        if policy == "alternate":
            send = self._refusals % 2 == 1  # the first refusal carries it, the second not, ...
        elif policy == "always":
            send = True
        else:
            send = self._rng.random() < float(policy)
        return max(1, math.ceil(wait - _RETRY_AFTER_SLACK)) if send else None

    def stats(self) -> dict[OperationClass, ThrottleCounts]:
        """Served and refused counts per class (a snapshot)."""
        with self._lock:
            return {op: ThrottleCounts(w.served, w.refused) for op, w in self._windows.items()}

    def reset(self) -> None:
        """Forget every admission and count (a fresh window, a fresh RNG)."""
        with self._lock:
            self._windows = {operation: _Window() for operation in OPERATION_CLASSES}
            self._refusals = 0
            self._rng = random.Random(self.limits.seed if self.limits else 0)

    def to_json(self) -> dict[str, Any]:
        """Limits (``null`` when off) and counts, as the admin endpoint shows them."""
        stats: Mapping[OperationClass, ThrottleCounts] = self.stats()
        return {
            "limits": self.limits.to_json() if self.limits else None,
            "stats": {op: asdict(counts) for op, counts in stats.items()},
        }
