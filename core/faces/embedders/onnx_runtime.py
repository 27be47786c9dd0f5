"""ONNX Runtime execution providers, chosen once for every ONNX model of the service, and the
sessions the default model runs on."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.errors import ModelUnavailable

# Linux's count of runnable tasks, system-wide ("running/total", the loadavg file's 4th field)
RUNNABLE_FILE = Path("/proc/loadavg")


def choose_providers(setting: str) -> list[str]:
    """ONNX Runtime providers for a setting: "auto" prefers CUDA when the build offers it."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if setting.strip().lower() != "auto":
        wanted = [p.strip() for p in setting.split(",") if p.strip()]
        missing = [p for p in wanted if p not in available]
        if missing:
            raise ModelUnavailable(f"ONNX Runtime providers {missing} are not available (available: {available})")
        return wanted
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def runnable_tasks() -> int | None:
    """Tasks running or ready to run on the machine now, the caller included (None off Linux)."""
    try:
        return int(RUNNABLE_FILE.read_bytes().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _session(path: object, providers: list[str], threads: int, spinning: bool) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    # spinning or not, a pool's threads sleep once a run is over: left spinning, the detector's
    # took the cores from the recognizer's run that follows it, and from the rest of the service
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return onnxruntime.InferenceSession(str(path), options, providers=providers)


class PacedSession:
    """One model on the CPU, two ONNX Runtime sessions, chosen run by run by what else the
    machine is running.

    A small graph's operators take microseconds: a pool whose threads sleep between them pays a
    wake-up per operator, one whose threads spin-wait does not (a photo's detection and embedding
    15.6 -> 14.0 ms on 2 cores). But a spinning thread that shares its core with another busy
    process burns its time slice waiting for a sibling that is not running (one busy process
    beside it: 21.4 ms spinning, 16.9 ms sleeping; ``bench/onnx_pacing.py``, BENCHMARKS.md). So a
    run spins when the machine's runnable tasks (the caller included) leave the pool's threads
    idle cores, and sleeps otherwise (a service under load, or no way to tell).
    """

    def __init__(
        self,
        path: object,
        providers: list[str],
        threads: int = 0,
        runnable: Callable[[], int | None] = runnable_tasks,
        cores: int | None = None,
    ) -> None:
        self._quick = _session(path, providers, threads, spinning=True)
        self._lean = _session(path, providers, threads, spinning=False)
        self._runnable = runnable
        self._cores = cores or usable_cores()

    def pick(self) -> Any:
        """The session for a run starting now."""
        runnable = self._runnable()
        return self._quick if runnable is not None and runnable < self._cores else self._lean

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any], run_options: Any = None) -> Any:
        return self.pick().run(output_names, input_feed, run_options)

    def __getattr__(self, name: str) -> Any:  # inputs, outputs, providers: the same in both
        return getattr(self._lean, name)


def onnx_session(path: object, providers: list[str], threads: int = 0) -> Any:
    """A session over a model file (``threads`` 0: one per core): paced on the CPU (above), one
    plain session on a GPU provider (its threads only feed the device). Its log is kept to errors:
    ArcFace graphs declare a batch of 1 and ONNX Runtime warns at every larger batch."""
    if providers and providers[0] != "CPUExecutionProvider":
        return _session(path, providers, threads, spinning=False)
    return PacedSession(path, providers, threads)
