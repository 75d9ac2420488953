"""Switchable faults: what can go wrong between a client and Zoom, on demand.

A `Fault` says what goes wrong and on which calls; `FaultSet` (``sim.faults``) holds the
injected faults and decides, call by call, whether one fires. Faults hit the API
endpoints unless ``path="/oauth/token"``.

Faults act at three points of a call, so each only sees the calls it can affect:

- on arrival (``ARRIVAL_KINDS``): infrastructure failures in front of Zoom (5xx, resets,
  slow answers, 429s, an HTML page) and token revocation;
- after the request is authorised and valid, for calls that carry a next_page_token
  (``page_token_expired``);
- once a successful page is ready (``PAGE_KINDS``: an empty page, a cut-off body).

``after_calls`` and ``count`` count the calls a fault sees at its point.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

TOKEN_PATH = "/oauth/token"
API_PREFIX = "/v2"

HTTP_ERROR_KINDS = frozenset({"http_500", "http_502", "http_503"})
ARRIVAL_KINDS = HTTP_ERROR_KINDS | {
    "reset",
    "slow",
    "qps_429",
    "daily_429",
    "token_revoked",
    "html_200",
}
PAGE_TOKEN_KINDS = frozenset({"page_token_expired"})
PAGE_KINDS = frozenset({"empty_page_with_token", "truncated_json"})
KINDS = ARRIVAL_KINDS | PAGE_TOKEN_KINDS | PAGE_KINDS
#: Kinds that keep firing until FaultSet.clear(), whatever their count says.
PERSISTENT_KINDS = frozenset({"daily_429"})


@dataclass(frozen=True)
class Fault:
    """One kind of failure.

    kind: one of ``KINDS``.
    count: how many calls it hits (None: unlimited; ignored for ``daily_429``, which
        lasts until ``sim.faults.clear()``). With ``probability`` it still caps the hits:
        pass ``count=None`` for a steady error rate.
    path: the endpoint it hits, e.g. "/v2/report/activities" (the "/v2" may be left
        out); "/oauth/token" for the token endpoint; None: every API endpoint.
    after_calls: let this many matching calls through first.
    delay: seconds a ``slow`` fault waits before answering normally.
    probability: hit each matching call with this chance (seeded from the simulator's
        seed) instead of hitting every one.
    """

    kind: str
    count: int | None = 1
    path: str | None = None
    after_calls: int = 0
    delay: float = 0.0
    probability: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(sorted(KINDS))}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1, or None for unlimited")
        if self.after_calls < 0:
            raise ValueError("after_calls must not be negative")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")


def normalise_path(path: str) -> str:
    """ "/v2/report/activities/" and "/report/activities" name the same endpoint."""
    path = path.rstrip("/") or "/"
    if path.startswith(API_PREFIX + "/"):
        path = path[len(API_PREFIX) :]
    return path


@dataclass
class _Armed:
    """An injected fault and what it has seen so far."""

    fault: Fault
    rng: random.Random
    seen: int = 0
    hits: int = 0
    target: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.target = None if self.fault.path is None else normalise_path(self.fault.path)

    def matches(self, kinds: Collection[str], path: str) -> bool:
        if self.fault.kind not in kinds or self.exhausted:
            return False
        if self.target is None:
            return path != TOKEN_PATH
        return self.target == path

    @property
    def exhausted(self) -> bool:
        if self.fault.kind in PERSISTENT_KINDS or self.fault.count is None:
            return False
        return self.hits >= self.fault.count

    def due(self) -> bool:
        """Counts the call; True when the fault wants to hit it."""
        self.seen += 1
        if self.seen <= self.fault.after_calls:
            return False
        if self.fault.probability is not None:
            return self.rng.random() < self.fault.probability
        return True


class FaultSet:
    """The faults injected into one simulator. Thread-safe."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self._injected = 0
        self._hits: Counter[str] = Counter()

    def inject(self, fault: Fault) -> Fault:
        """Arm `fault`; it acts on calls from now on. Returns it for convenience."""
        if not isinstance(fault, Fault):
            raise TypeError("inject() takes a Fault")
        with self._lock:
            rng = random.Random(f"{self._seed}/fault/{self._injected}")
            self._injected += 1
            self._armed.append(_Armed(fault, rng))
        return fault

    def clear(self) -> None:
        """Disarm every fault (hit counts are kept)."""
        with self._lock:
            self._armed.clear()

    def hits(self, kind: str | None = None) -> int:
        """How many calls faults of `kind` (or of any kind) have hit so far."""
        with self._lock:
            return self._hits[kind] if kind is not None else sum(self._hits.values())

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return [a.fault for a in self._armed if not a.exhausted]

    def take(self, kinds: Collection[str], path: str) -> Fault | None:
        """The fault that hits this call at the point that handles `kinds`, if any.

        Every matching fault counts the call; the first one (in injection order) that
        wants it gets it.
        """
        path = normalise_path(path)
        chosen: _Armed | None = None
        with self._lock:
            for armed in self._armed:
                if armed.matches(kinds, path) and armed.due() and chosen is None:
                    chosen = armed
            if chosen is None:
                return None
            chosen.hits += 1
            self._hits[chosen.fault.kind] += 1
            return chosen.fault
