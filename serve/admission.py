"""Load shedding at the API: a request that would wait longer than the budget is told to come
back (HTTP 503 + Retry-After) at once, instead of queueing past every client's timeout.

Requests are counted per class (``identify``: identify, verify, embed; ``enroll``: enrollments
and view generation), because the two differ tenfold in cost. For each class the controller
measures its throughput while it is busy (completions per second of time with work in flight:
idle gaps do not count). A newcomer's time in the system is predicted as
``HEADROOM * (backlog + 1 / throughput)``, the backlog being every class's in-flight count over
its own throughput (all classes share the machine). Over ``budget_s`` it is refused. Until a class has finished a
few requests it admits at most ``COLD_LIMIT`` of it at once; while fewer than ``min_in_flight``
are in flight, everything is admitted.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field

CLASSES: dict[tuple[str, str], str] = {
    ("POST", "/v1/identify"): "identify",
    ("POST", "/v1/verify"): "identify",
    ("POST", "/v1/embed"): "identify",
    ("POST", "/v1/persons"): "enroll",
    ("POST", "/api/enroll"): "enroll",
    ("POST", "/v1/generate"): "enroll",
}

_ADD_PHOTO = re.compile(r"/v1/persons/\d+/photos")


def request_class(method: str, path: str) -> str | None:
    """The admission class of a request (None: not admission-controlled)."""
    path = path.rstrip("/")
    if method == "POST" and _ADD_PHOTO.fullmatch(path):
        return "enroll"
    return CLASSES.get((method, path))


# In flight at most, per class, before its throughput is known (a burst at start-up).
COLD_LIMIT: dict[str, int] = {"identify": 8, "enroll": 4}
# Throughput on a shared machine wobbles; predictions are stretched by this much before the budget.
HEADROOM = 1.5
WINDOW_S = 10.0  # busy seconds of history behind a throughput estimate


@dataclass
class _Load:
    in_flight: int = 0
    busy_s: float = 0.0  # total time with at least one request in flight
    busy_since: float | None = None
    completions: deque[float] = field(default_factory=lambda: deque(maxlen=4096))  # busy_s at each completion

    def busy_now(self, now: float) -> float:
        return self.busy_s + (now - self.busy_since if self.busy_since is not None else 0.0)

    def throughput(self, now: float) -> float | None:
        """Completions per busy second over the last WINDOW_S busy seconds (a window in time,
        not in completions: batched work completes in clusters); None without enough data."""
        busy = self.busy_now(now)
        span = min(WINDOW_S, busy)
        recent = sum(1 for c in self.completions if c >= busy - span)
        return recent / span if recent >= 4 and span >= 1.0 else None


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    expected_s: float | None  # predicted time in the system for a newcomer
    retry_after_s: int = 0


class Admission:
    def __init__(self, budget_s: float, min_in_flight: int = 4) -> None:
        self.budget_s = budget_s
        self.min_in_flight = min_in_flight
        self._loads: dict[str, _Load] = {}
        self._lock = threading.Lock()

    def enter(self, kind: str) -> Verdict:
        """Admit (and count) a request of ``kind``, or refuse it with a retry delay."""
        now = time.monotonic()
        with self._lock:
            load = self._loads.setdefault(kind, _Load())
            rate = load.throughput(now)
            expected = HEADROOM * (self._backlog_s(now) + 1 / rate) if rate else None
            if load.in_flight >= self.min_in_flight:
                if expected is not None and expected > self.budget_s:
                    return Verdict(False, expected, min(60, max(1, math.ceil(expected - self.budget_s))))
                if expected is None and load.in_flight >= COLD_LIMIT.get(kind, self.min_in_flight):
                    return Verdict(False, None, 1)
            if load.in_flight == 0:
                load.busy_since = now
            load.in_flight += 1
            return Verdict(True, expected)

    def _backlog_s(self, now: float) -> float:
        """Seconds of work in flight, every class together: the classes share one machine (the
        Embedder's processes), so enrollments in flight delay an identify and the other way round.
        Each class's count is turned into time by its own throughput (measured while it shared
        the machine: an overestimate when one class runs alone, the safe side)."""
        backlog = 0.0
        for load in self._loads.values():
            rate = load.throughput(now)
            if rate and load.in_flight:
                backlog += load.in_flight / rate
        return backlog

    def leave(self, kind: str, completed: bool = True) -> None:
        """``completed``: the request did its work (a 2xx). A refusal (401, 403, 413, 422 ...)
        takes a millisecond; counted as a completion it would make the class look fast and
        open the door to a flood of real work (it did, after a burst of 401s)."""
        now = time.monotonic()
        with self._lock:
            load = self._loads[kind]
            if completed:
                load.completions.append(load.busy_now(now))
            load.in_flight -= 1
            if load.in_flight == 0 and load.busy_since is not None:
                load.busy_s += now - load.busy_since
                load.busy_since = None

    def snapshot(self) -> dict[str, dict[str, float | int | None]]:
        now = time.monotonic()
        with self._lock:
            return {
                kind: {"in_flight": load.in_flight, "throughput_per_s": load.throughput(now)}
                for kind, load in self._loads.items()
            }
