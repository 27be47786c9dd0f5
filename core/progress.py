"""Progress of long work: a bar with rate and ETA on a terminal, periodic log lines otherwise.

May import: nothing of core.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any, TextIO

log = logging.getLogger(__name__)


class Progress:
    def __init__(
        self, total: int, what: str, unit: str = "photo", stream: TextIO | None = None, every_s: float = 10.0
    ) -> None:
        self.total = total
        self.what = what
        self.unit = unit
        self.done = 0
        self.every_s = every_s
        self._started = time.monotonic()
        self._last_line = self._started
        stream = stream or sys.stderr
        self._bar: Any = None
        if stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=what, unit=unit, file=stream, dynamic_ncols=True)
        else:
            log.info("%s: %d %ss to do", what, total, unit)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_line >= self.every_s or self.done >= self.total:
            self._last_line = now
            log.info("%s: %s", self.what, self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return f"{self.done}/{self.total} {self.unit}s ({pct:.0f}%), {rate:.2f}/s, {elapsed:.0f} s elapsed, ETA {eta:.0f} s"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
