"""Model worker processes: each holds its own FaceEngine, so N of them use N cores.

dlib's calls hold the GIL (two threads over two model copies run no faster than one), so the
embedded default needs processes to use more than one core. A call is a list of tasks
``(function, args)``; the pool splits it into contiguous groups, one per worker, runs them at
once and returns the results in order. ``function(engine, *args)`` must be a module-level
function (it travels by name). With one worker everything runs in this process, no copies.

A worker that dies is restarted on the next call; the call it was running fails with a
:class:`ModelUnavailable`. Workers exit when their parent goes (their pipe closes).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from core.errors import ManyAnglesError, ModelUnavailable
from core.faces.loading import load_face_models
from core.faces.recognition import FaceEngine
from core.settings import Settings

log = logging.getLogger(__name__)

Task = tuple[Callable[..., Any], tuple[Any, ...]]
Outcome = tuple[bool, Any]  # (ok, value or exception)
WORKER_NICE = 10


def _run_tasks(engine: FaceEngine, tasks: Sequence[Task]) -> list[Outcome]:
    out: list[Outcome] = []
    for function, args in tasks:
        try:
            out.append((True, function(engine, *args)))
        except ManyAnglesError as exc:
            out.append((False, exc))
        except Exception as exc:
            log.exception("model task %s failed", getattr(function, "__name__", function))
            out.append((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
    return out


def _worker_main(conn: Connection, settings: Settings) -> None:
    # Model work is bulk CPU; the HTTP path (proxy, API, refusals, health) is short and must stay
    # responsive when every core is busy with it: the workers yield the CPU first.
    os.nice(WORKER_NICE)
    try:
        engine = FaceEngine(load_face_models(settings))
    except Exception as exc:  # noqa: BLE001 - the parent raises it
        conn.send(
            (False, exc if isinstance(exc, ManyAnglesError) else ModelUnavailable(f"{type(exc).__name__}: {exc}"))
        )
        return
    conn.send((True, None))
    while True:
        try:
            tasks = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if tasks is None:
            return
        conn.send(_run_tasks(engine, tasks))


class _Worker:
    def __init__(self, settings: Settings, index: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child, settings), name=f"manyangles-model-{index}", daemon=True
        )
        self.process.start()
        child.close()
        try:
            ok, error = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(5)
            raise ModelUnavailable(
                f"model worker process {index} exited while loading the models (exit code "
                f"{self.process.exitcode}); a script that starts workers needs `if __name__ == '__main__':`"
            ) from None
        if not ok:
            self.process.join(5)
            raise error

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
        self.conn.close()


class ModelPool:
    """``size`` model copies: in this process when size is 1, else one worker process each."""

    def __init__(self, settings: Settings, size: int, engine: FaceEngine | None = None) -> None:
        """``engine``: an already loaded in-process copy to use (size 1)."""
        self.settings = settings
        self.size = 1 if engine is not None else max(1, size)
        self._lock = threading.Lock()  # one call at a time uses every worker
        self._local: FaceEngine | None = engine
        self._workers: list[_Worker] = []
        if self._local is not None:
            pass
        elif self.size == 1:
            self._local = FaceEngine(load_face_models(settings))
        else:
            self._workers = [_Worker(settings, i) for i in range(self.size)]
        log.info("model pool: %d %s", self.size, "process(es)" if self._workers else "in-process copy")

    def run(self, tasks: Sequence[Task]) -> list[Outcome]:
        """Every task's (ok, value), in order; tasks are split among the workers."""
        if not tasks:
            return []
        with self._lock:
            if self._local is not None:
                return _run_tasks(self._local, tasks)
            groups = _split(list(tasks), len(self._workers))
            busy: list[tuple[_Worker, int]] = []
            for index, group in enumerate(groups):
                if group:
                    worker = self._ensure(index)
                    worker.conn.send(group)
                    busy.append((worker, len(group)))
            out: list[Outcome] = []
            for worker, count in busy:
                try:
                    out.extend(worker.conn.recv())
                except (EOFError, OSError):
                    out.extend([(False, ModelUnavailable("a model worker process died; retry the request"))] * count)
            return out

    def values(self, tasks: Sequence[Task]) -> list[Any]:
        """Like ``run`` but raises the first error."""
        results = self.run(tasks)
        for ok, value in results:
            if not ok:
                raise value
        return [value for _, value in results]

    def _ensure(self, index: int) -> _Worker:
        worker = self._workers[index]
        if not worker.alive():
            log.warning("model worker %d died: restarting it", index)
            worker = self._workers[index] = _Worker(self.settings, index)
        return worker

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        self._workers = []


def _split(items: list[Task], parts: int) -> list[list[Task]]:
    """Contiguous, as even as possible: 5 items in 2 parts -> 3 + 2."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        out.append(items[start:stop])
        start = stop
    return out
