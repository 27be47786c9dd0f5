"""ONNX Runtime execution providers, chosen once for every ONNX model of the service, and the
sessions the default model runs on."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.errors import ModelUnavailable

# Linux's CPU time counters, machine-wide: the first line, "cpu user nice system idle iowait irq
# softirq steal ...", in clock ticks
CPU_TIMES_FILE = Path("/proc/stat")
LOAD_WINDOW_S = 0.25  # how far back a run's session looks at what the other processes did
SPARE_CORE = 0.5  # others busier than half a core on average: the pool's threads would share one


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


def machine_busy_seconds() -> float | None:
    """CPU seconds every process of the machine has used since boot (None off Linux)."""
    try:
        fields = CPU_TIMES_FILE.read_bytes().split(b"\n", 1)[0].split()
        ticks = sum(int(fields[i]) for i in (1, 2, 3, 6, 7, 8))  # user nice system irq softirq steal
    except (OSError, IndexError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_sample() -> tuple[float, float, float] | None:
    """(now, the machine's CPU seconds, this process's), or None where the machine's are unknown."""
    busy = machine_busy_seconds()
    return None if busy is None else (time.monotonic(), busy, time.process_time())


class OtherProcesses:
    """How many cores the machine's other processes kept busy lately: the machine's CPU time less
    this process's, over the time since the last measure, measured again when a run asks and that
    is ``LOAD_WINDOW_S`` or more ago (the file is read then only). None: unknown (not Linux).

    Limits: after an idle spell the window is the whole spell, so a job that started a moment ago
    weighs little until the next measure (a quarter second later); in a container ``/proc/stat``
    is the host's, so a busy host reads as load (the sleeping session: the behaviour before), and
    a CPU quota's throttling is not seen. The measure is one tuple, replaced whole: runs on
    several threads at once at worst measure twice."""

    def __init__(
        self,
        sample: Callable[[], tuple[float, float, float] | None] = cpu_sample,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sample = sample
        self._clock = clock
        self._mark = sample()
        self._cores: float | None = None

    @property
    def known(self) -> bool:
        """Whether this machine's CPU time can be read at all."""
        return self._mark is not None

    def cores_busy(self) -> float | None:
        mark = self._mark
        if mark is None or self._clock() - mark[0] < LOAD_WINDOW_S:
            return None if mark is None else self._cores
        now = self._sample()
        if now is None:
            return self._cores
        others = ((now[1] - mark[1]) - (now[2] - mark[2])) / (now[0] - mark[0])
        self._mark, self._cores = now, max(0.0, others)
        return self._cores


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
    wake-up per operator, one whose threads spin-wait does not. But a spinning thread that
    shares its core with another busy process burns its time slice waiting for a sibling that
    is not running. So a run spins while the other processes have kept less than half a core
    busy lately (a lone request's proxy and API hops), and sleeps otherwise (a service under
    load, a batch job beside it). Figures: ``bench/onnx_pacing.py`` and BENCHMARKS.md (on an idle
    2-core box a photo takes 0.86x its time with sleeping threads; beside one busy process,
    spinning takes 1.18-1.20x and paced 1.00x). Made by ``onnx_session`` where the load can be read.
    """

    def __init__(self, quick: Any, lean: Any, others: Callable[[], float | None] | None = None) -> None:
        self._quick = quick
        self._lean = lean
        self._others = others or OtherProcesses().cores_busy

    @classmethod
    def open(
        cls, path: object, providers: list[str], threads: int = 0, others: Callable[[], float | None] | None = None
    ) -> PacedSession:
        """Both sessions over a model file (``threads`` 0: one per core)."""
        quick, lean = (_session(path, providers, threads, spinning=spin) for spin in (True, False))
        return cls(quick, lean, others)

    def pick(self) -> Any:
        """The session for a run starting now."""
        others = self._others()
        return self._quick if others is not None and others < SPARE_CORE else self._lean

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any], run_options: Any = None) -> Any:
        return self.pick().run(output_names, input_feed, run_options)

    def set_providers(self, providers: list[str], provider_options: Any = None) -> None:
        for session in (self._quick, self._lean):
            session.set_providers(providers, provider_options)

    def __getattr__(self, name: str) -> Any:  # inputs, outputs, providers, options: as the lean one's
        if name.startswith("_"):  # not set yet (a copy being made): never recurse
            raise AttributeError(name)
        return getattr(self._lean, name)


def onnx_session(path: object, providers: list[str], threads: int = 0, load: OtherProcesses | None = None) -> Any:
    """A session over a model file (``threads`` 0: one per core): paced on the CPU by ``load`` (the
    models of one engine share one), one plain session with sleeping threads on a GPU provider (its
    threads only feed the device) or where the load cannot be read. Its log is kept to errors:
    ArcFace graphs declare a batch of 1 and ONNX Runtime warns at every larger batch."""
    load = load or OtherProcesses()
    if (providers and providers[0] != "CPUExecutionProvider") or not load.known:
        return _session(path, providers, threads, spinning=False)
    return PacedSession.open(path, providers, threads, others=load.cores_busy)
