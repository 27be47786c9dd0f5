"""The default model's ONNX Runtime sessions on the CPU: spinning threads only while the other
processes leave them idle cores, the same answers either way, detection paced as well."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from core.faces.decode import decode_image
from core.faces.embedders.arcface_wheel import load_wheel_models
from core.faces.embedders.onnx_runtime import (
    OtherProcesses,
    PacedSession,
    machine_busy_seconds,
    onnx_session,
)

from conftest import photo_bytes
from onnx_builders import arcface_graph

CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pacing") / "tiny_arcface.onnx"
    path.write_bytes(arcface_graph(seed=3, dim=64).SerializeToString())
    return path


def spins(session: object) -> bool:
    options = session.get_session_options()  # type: ignore[attr-defined]
    return options.get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_the_other_processes_load_is_their_cpu_time_over_the_last_window():
    now = [0.0, 100.0, 5.0]  # (monotonic s, the machine's CPU s, this process's CPU s)
    read: list[float] = []

    def sample() -> tuple[float, float, float]:
        read.append(now[0])
        return (now[0], now[1], now[2])

    load = OtherProcesses(sample, clock=lambda: now[0])
    assert load.known and load.cores_busy() is None  # nothing measured yet
    now[:] = [0.1, 100.1, 5.05]
    assert load.cores_busy() is None and read == [0.0]  # too soon: the file is not read
    now[:] = [1.0, 101.0, 5.6]  # 1.0 s of the machine's CPU since the mark, 0.6 of it ours
    assert load.cores_busy() == pytest.approx(0.4)
    now[:] = [1.1, 101.2, 5.6]
    assert load.cores_busy() == pytest.approx(0.4) and read == [0.0, 1.0]  # the last measure stands
    now[:] = [2.0, 103.1, 5.7]  # 2.0 s by others in a second: two busy cores
    assert load.cores_busy() == pytest.approx(2.0, rel=1e-6)
    unknown = OtherProcesses(lambda: None)  # not Linux
    assert not unknown.known and unknown.cores_busy() is None


def test_a_run_spins_only_while_the_others_leave_the_cores_idle(model_file: Path):
    loads: list[float | None] = [0.0, 0.3, 0.5, 1.7, None]  # idle, proxy hops, half a core, load, unknown
    session = PacedSession.open(model_file, CPU, others=lambda: loads.pop(0))
    assert [spins(session.pick()) for _ in range(5)] == [True, True, False, False, False]


def test_both_sessions_answer_the_same_and_stop_spinning_when_a_run_ends(model_file: Path):
    batch = np.random.default_rng(0).standard_normal((3, 3, 112, 112)).astype(np.float32)
    answers = []
    for load in (0.0, None):  # the spinning session, then the sleeping one
        session = PacedSession.open(model_file, CPU, others=lambda load=load: load)
        chosen = session.pick()
        assert chosen.get_session_options().get_session_config_entry("session.force_spinning_stop") == "1"
        answers.append(session.run(None, {session.get_inputs()[0].name: batch})[0])
    assert spins(PacedSession.open(model_file, CPU, others=lambda: 0.0).pick())
    assert answers[0].shape == (3, 64)
    np.testing.assert_array_equal(answers[0], answers[1])


def test_the_cpu_gets_a_paced_session_where_the_load_can_be_read(model_file: Path):
    assert isinstance(onnx_session(model_file, CPU), PacedSession) == Path("/proc/stat").exists()
    unknown = OtherProcesses(lambda: None)  # off Linux: one plain session, threads that sleep
    plain = onnx_session(model_file, CPU, load=unknown)
    assert not isinstance(plain, PacedSession) and not spins(plain) and plain.get_providers() == CPU


def test_the_machine_s_cpu_time_counts_this_process_s_in_seconds():
    if not Path("/proc/stat").exists():
        pytest.skip("Linux's /proc/stat")
    machine, own = machine_busy_seconds(), time.process_time()
    sum(i * i for i in range(3_000_000))  # ~0.1-0.3 s of this process's CPU
    spent = time.process_time() - own
    grown = machine_busy_seconds() - machine  # type: ignore[operator]
    # in seconds, not ticks: at least what this process used (less a tick on each core)
    assert spent > 0.05 and spent - 0.02 * (os.cpu_count() or 1) <= grown < spent + 10


def test_scrfd_runs_every_input_size_on_its_one_paced_session():
    import cv2

    models = load_wheel_models(CPU, detector=True, recognizer=False)
    rgb = decode_image(photo_bytes("Barack_Obama"), max_bytes=1 << 25, max_pixels=50_000_000).rgb
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    found = [models.detector_model.detect(bgr, input_size=size)[0] for size in ((256, 256), (192, 160))]
    assert all(len(boxes) >= 1 for boxes in found)
    sessions = models.detector_model.resolution_sessions
    assert {(256, 256), (192, 160)} <= set(sessions)
    # no session of its own per size (insightface's default: ~9 MB and ~20 ms each, for every size met)
    assert all(s is models.detector_model.session for s in sessions.values())
    assert isinstance(models.detector_model.session, PacedSession)
