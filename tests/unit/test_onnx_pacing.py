"""The default model's ONNX Runtime sessions on the CPU: spinning threads only while the machine
has idle cores for them, the same answers either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.faces.embedders.onnx_runtime import PacedSession, onnx_session, runnable_tasks

from onnx_builders import arcface_graph


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pacing") / "tiny_arcface.onnx"
    path.write_bytes(arcface_graph(seed=3, dim=64).SerializeToString())
    return path


def spinning(session: object) -> str:
    return session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")  # type: ignore[attr-defined]


def test_a_run_spins_only_when_the_runnable_tasks_leave_the_pool_idle_cores(model_file: Path):
    counts: list[int | None] = []
    session = PacedSession(model_file, ["CPUExecutionProvider"], runnable=lambda: counts.pop(0), cores=4)
    counts[:] = [1, 3, 4, 9, None]  # the caller alone; 3 of 4 cores busy; all busy; overloaded; not Linux
    picked = [spinning(session.pick()) for _ in range(5)]
    assert picked == ["1", "1", "0", "0", "0"]


def test_both_sessions_answer_the_same_and_stop_spinning_when_a_run_ends(model_file: Path):
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((3, 3, 112, 112)).astype(np.float32)
    answers = []
    for runnable in (lambda: 0, lambda: None):  # the spinning session, then the sleeping one
        session = PacedSession(model_file, ["CPUExecutionProvider"], runnable=runnable, cores=2)
        chosen = session.pick()
        assert chosen.get_session_options().get_session_config_entry("session.force_spinning_stop") == "1"
        answers.append(session.run(None, {session.get_inputs()[0].name: batch})[0])
    assert answers[0].shape == (3, 64)
    np.testing.assert_array_equal(answers[0], answers[1])


def test_the_cpu_gets_a_paced_session_and_the_runnable_count_is_read(model_file: Path):
    session = onnx_session(model_file, ["CPUExecutionProvider"])
    assert isinstance(session, PacedSession)
    assert session.get_providers() == ["CPUExecutionProvider"]
    if Path("/proc/loadavg").exists():
        count = runnable_tasks()
        assert count is not None and count >= 1  # this test is running
