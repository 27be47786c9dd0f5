"""The `make run` launcher as an operator meets it: SIGKILL of the whole service during enrollments
(the restart's start-up check repairs and says what it did), SIGTERM and SIGINT (everything stops
within 10 s, exit 0), and a second start on a port in use (says so, exits non-zero)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from conftest import AUTH, KEY, REPO, cli, free_port, photo_bytes

log = logging.getLogger(__name__)  # figures for RELIABILITY.md: pytest --log-cli-level=INFO

UP_TIMEOUT_S = 240
STOP_LIMIT_S = 10.0


class Launcher:
    """``python -m serve.run`` (what ``make run`` runs) on free ports and its own data dir."""

    def __init__(self, root: Path, api_port: int, console_port: int) -> None:
        self.root, self.api_port, self.console_port = root, api_port, console_port
        config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
        config["http_options"]["port"] = api_port
        config["applications"][0]["args"].update(data_dir=str(root / "data"), api_key=KEY)
        self.config = root / "serve_config.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.output = root / "launcher.out"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "serve.run", "--config", str(self.config), "--out", str(self.root / "out")]
                + ["--console-port", str(self.console_port)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches the launcher alone: we send it ourselves
            )
        return self.process

    def wait_up(self) -> None:
        deadline = time.monotonic() + UP_TIMEOUT_S
        while self.text().count("ManyAngles is up") < self.starts:
            assert self.process is not None and self.process.poll() is None, self.text()[-3000:]
            assert time.monotonic() < deadline, self.text()[-3000:]
            time.sleep(1)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def tree(self) -> list[psutil.Process]:
        assert self.process is not None
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if _running(p)]


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # it ended between the two questions
        return False


def kill_all(processes: list[psutil.Process]) -> None:
    """SIGKILL each one still running; one that ends on its own meanwhile (its parent was killed
    first, Ray's processes follow their raylet) is what we wanted anyway."""
    for process in alive(processes):
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def stop_with(launcher: Launcher, signum: int) -> tuple[int, float]:
    """Send ``signum`` to the launcher alone; its exit code and the time until the launcher and
    every process it started (Serve, Ray, the console) are gone."""
    processes = launcher.tree()
    assert len(processes) > 5, processes  # launcher, serve, Ray's processes, replicas, console
    assert launcher.process is not None
    started = time.monotonic()
    launcher.process.send_signal(signum)
    code = launcher.process.wait(timeout=60)
    while alive(processes) and time.monotonic() - started < 60:
        time.sleep(0.1)
    assert not alive(processes), [p.name() for p in alive(processes)]
    return code, time.monotonic() - started


@pytest.fixture()
def launcher(tmp_path: Path):
    launcher = Launcher(tmp_path, free_port(), free_port())
    yield launcher
    if launcher.process is not None and launcher.process.poll() is None:
        kill_all(launcher.tree())


def test_sigkill_during_enrollments_then_restart_repairs_then_sigterm_stops_in_10_s(launcher: Launcher):
    launcher.start()
    launcher.wait_up()

    # SIGKILL everything (a power cut, the OOM killer) while augmented enrollments are in flight
    answers: dict[str, int | str] = {}

    def enroll(name: str, who: str) -> None:
        try:
            with httpx.Client(base_url=launcher.base_url, timeout=60) as http:
                answers[name] = http.post(
                    "/v1/persons",
                    headers=AUTH,
                    data={"name": name, "use_augmentation": "true"},
                    files={"photo": ("p.jpg", photo_bytes(who), "image/jpeg")},
                ).status_code
        except httpx.TransportError as exc:
            answers[name] = type(exc).__name__

    people = {"Kill A": "George_Clooney", "Kill B": "Matt_Damon", "Kill C": "Katy_Perry"}
    threads = [threading.Thread(target=enroll, args=item) for item in people.items()]
    for t in threads:
        t.start()
    time.sleep(1.5)
    kill_all(launcher.tree())
    for t in threads:
        t.join()
    # what a kill at a worse moment leaves behind: an image no row names, a half-written file
    images = launcher.root / "data" / "images"
    orphan = images / ("ab" * 32 + ".jpg")
    orphan.write_bytes(photo_bytes("Cate_Blanchett"))
    half = images / ".tmp-kill-test.jpg"
    half.write_bytes(photo_bytes("Cate_Blanchett")[:1000])
    old = time.time() - 3600
    os.utime(half, (old, old))

    launcher.start()
    launcher.wait_up()
    assert not orphan.exists() and not half.exists()
    # the API replica's check says what it removed; its log reaches the launcher's output through
    # Ray's log monitor, which may come after the launcher's own banner
    deadline = time.monotonic() + 30
    while not all(word in (text := launcher.text()) for word in ("orphan", orphan.name, half.name)):
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.5)
    with httpx.Client(base_url=launcher.base_url, timeout=60) as http:
        stored = {p["name"]: p for p in http.get("/v1/persons", headers=AUTH, params={"limit": 1000}).json()["persons"]}
        for name, status in answers.items():  # every 201 survived, whole; nothing half-stored
            if status == 201:
                assert name in stored and stored[name]["num_embeddings"] > 1, (name, stored)
        assert (
            http.post(
                "/v1/persons",
                headers=AUTH,
                data={"name": "After Restart", "use_augmentation": "true", "face": "largest"},  # a bystander
                files={"photo": ("p.jpg", photo_bytes("Clint_Eastwood"), "image/jpeg")},
            ).status_code
            == 201
        )
    check = cli(launcher.root / "data", "check")
    assert check.returncode == 0, check.stdout + check.stderr

    log.info("SIGKILL during enrollments: answers %s; restart repaired, %d stored", answers, len(stored))
    code, seconds = stop_with(launcher, signal.SIGTERM)
    log.info("SIGTERM: exit %d after %.1f s, every process gone", code, seconds)
    assert code == 0 and seconds <= STOP_LIMIT_S, (code, seconds, launcher.text()[-2000:])


def test_sigint_stops_in_10_s_and_a_port_in_use_is_refused(launcher: Launcher):
    with socket.socket() as squatter:  # a second start on a port in use says so and exits non-zero
        squatter.bind(("127.0.0.1", launcher.api_port))
        squatter.listen()
        refused = launcher.start()
        assert refused.wait(timeout=60) != 0
        launcher.starts -= 1
        assert f"port {launcher.api_port} on 127.0.0.1 is in use" in launcher.text()

    launcher.start()
    launcher.wait_up()
    assert KEY not in launcher.text() and "test...23" in launcher.text()  # the banner masks the key
    code, seconds = stop_with(launcher, signal.SIGINT)
    log.info("SIGINT: exit %d after %.1f s, every process gone", code, seconds)
    assert code == 0 and seconds <= STOP_LIMIT_S, (code, seconds, launcher.text()[-2000:])
