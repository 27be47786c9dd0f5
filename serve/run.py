"""``make run``: start Ray Serve with serve_config.yaml, print the URLs and the API key, and stop
everything cleanly on Ctrl-C or SIGTERM.

The terminal keeps the banner, warnings and errors; every log line of Ray Serve (one per
request, among others) goes to a log file named in the banner. ``--follow-logs`` streams them
all to the terminal as well.

On a machine without an NVIDIA GPU the Generator's ``num_gpus: 1`` would never be placed, so the
CPU override of serve/config.py is applied to a copy of the config, and we say so.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import yaml

from core.errors import ManyAnglesError
from core.settings import Settings
from core.store.db import safe_url
from serve.auth import ensure_api_key
from serve.config import REPO, SERVE_CONFIG, cpu_override, read_config
from serve.proxy_errors import proxy_environment

log = logging.getLogger("manyangles.run")
# Lines worth a person's attention while the service runs.
_NOTEWORTHY = re.compile(r"\b(WARNING|WARN|ERROR|CRITICAL|Traceback|Exception|Error:)\b")


STOP_TIMEOUT_S = 8.0  # then SIGKILL: docker stop's grace period is 10 s


def has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def effective_config(path: Path, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    config = read_config(path)
    if has_gpu():
        return path, config
    config = cpu_override(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "serve_config.cpu.yaml"
    target.write_text(
        "# written by `make run`: serve_config.yaml with the CPU override\n" + yaml.safe_dump(config, sort_keys=False)
    )
    log.warning("no NVIDIA GPU found: applying the CPU override (num_gpus: 0) -> %s", target)
    return target, config


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def console_command(port: int, max_upload_bytes: int) -> list[str]:
    """``streamlit run`` of the console on loopback, headless; its uploader is capped at the
    service's upload cap (Streamlit's own default says 200 MB), and its toolbar is an admin's,
    not a developer's (no Deploy button, no Rerun or Clear cache)."""
    return [
        str(Path(sys.executable).with_name("streamlit")),
        "run",
        str(REPO / "console" / "app.py"),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.maxUploadSize",  # MiB
        str(max(1, math.ceil(max_upload_bytes / 2**20))),
        "--client.toolbarMode",
        "viewer",
    ]


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (OSError, http.client.HTTPException):  # not up yet, or not HTTP yet on that port
            pass
        time.sleep(1)
    return False


def describe_model(url: str) -> None:
    """The model the gallery answers with, on what terms, and any notice (a better model available)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            health = json.loads(response.read())
    except (OSError, http.client.HTTPException, ValueError):
        return
    model = (health["deployments"]["embedder"] or {}).get("model")
    if model:
        log.info("  model    %s with %s (%s)", model["name"], model["detector"], model["source"])
        log.info("  licence  %s", model["licence"])
        if "non-commercial" in model["licence"]:
            log.info("           permissive models: MANYANGLES_EMBEDDER=dlib MANYANGLES_DETECTOR=dlib (README, Models)")
    for notice in health.get("notices", []):
        log.warning("  NOTE     %s", notice)


def pump_logs(source: IO[bytes], log_file: Path, follow: bool) -> None:
    """Every line to the log file; to the terminal only what needs attention (or all: follow)."""
    echo_until_blank = False
    with log_file.open("ab") as sink:
        for raw in iter(source.readline, b""):
            sink.write(raw)
            sink.flush()
            line = raw.decode("utf-8", "replace")
            noteworthy = bool(_NOTEWORTHY.search(line))
            if follow or noteworthy or (echo_until_blank and line.startswith((" ", "\t"))):
                sys.stderr.write(line)
                sys.stderr.flush()
            echo_until_blank = noteworthy or (echo_until_blank and line.startswith((" ", "\t")))


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same path as Ctrl-C, in the main thread


def _default_sigint() -> None:
    """In the child before exec: a process started in the background of a shell script inherits
    SIGINT *ignored*, and serve run would then ignore the SIGINT that asks it to shut down."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the ManyAngles service on Ray Serve")
    parser.add_argument("--config", type=Path, default=SERVE_CONFIG)
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for readiness")
    parser.add_argument("--follow-logs", action="store_true", help="stream every Serve log line here too")
    parser.add_argument("--console-port", type=int, default=8501, help="the Streamlit console's port (0: no console)")
    parser.add_argument("--out", type=Path, default=REPO / "out", help="folder for logs and the effective config")
    return parser.parse_args()


def _ports_free(host: str, port: int, console_port: int) -> bool:
    """Whether the API's port (and the console's, unless 0) is free; says which is not."""
    wanted = [(host, port, "the API (http_options.port in the config)")]
    if console_port:
        wanted.append(("127.0.0.1", console_port, "the console (--console-port)"))
    for where, number, what in wanted:
        if port_in_use(where, number):
            log.error(
                "port %d on %s is in use: is ManyAngles already running? Stop it or choose another port for %s",
                number,
                where,
                what,
            )
            return False
    return True


def _start_serve(config_path: Path, env: dict[str, str], log_file: Path, follow: bool) -> subprocess.Popen[bytes]:
    """``serve run`` in a session of its own, its output pumped to ``log_file`` (and the terminal)."""
    serve_bin = Path(sys.executable).with_name("serve")
    process = subprocess.Popen(
        [str(serve_bin), "run", str(config_path)],
        cwd=REPO,
        env=env,
        start_new_session=True,
        preexec_fn=_default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    threading.Thread(target=pump_logs, args=(process.stdout, log_file, follow), daemon=True).start()
    return process


class _Children:
    """The processes ``make run`` started: Ray Serve, then the console."""

    def __init__(self, serve: subprocess.Popen[bytes]) -> None:
        self.serve = serve
        self.console: subprocess.Popen[bytes] | None = None

    def start_console(self, port: int, env: dict[str, str], max_upload_bytes: int, log_dir: Path) -> None:
        """The console, held here as soon as it starts (a Ctrl-C while it comes up stops it too)."""
        console_log = (log_dir / "console.log").open("ab")
        self.console = subprocess.Popen(
            console_command(port, max_upload_bytes),
            cwd=REPO,
            env=env,
            start_new_session=True,
            stdout=console_log,
            stderr=subprocess.STDOUT,
        )
        if not wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", self.console, 60):
            log.error("the console did not come up (port %d in use?); its log: %s", port, log_dir / "console.log")

    def console_up(self) -> bool:
        return self.console is not None and self.console.poll() is None

    def stop(self) -> None:
        """Both children at once (a sequential stop adds their times), then wait for each."""
        started = time.monotonic()
        running = [
            (name, p) for name, p in (("console", self.console), ("Ray Serve", self.serve)) if p and p.poll() is None
        ]
        for name, child in running:
            log.info("stopping %s ...", name)
            if child is self.serve:  # to serve run alone, as Ctrl-C: it tears down the app, then its Ray
                child.send_signal(signal.SIGINT)  # (Ray's processes, in its group, must outlive that)
            else:
                os.killpg(child.pid, signal.SIGTERM)
        for name, child in running:
            try:
                child.wait(timeout=max(1.0, STOP_TIMEOUT_S - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s: killing it", name, STOP_TIMEOUT_S)
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            log.info("%s stopped after %.1f s", name, time.monotonic() - started)


def _banner(
    args: argparse.Namespace, base: str, settings: Settings, key: str, created: bool, log_file: Path, console: bool
) -> None:
    """Where everything is: the console, the API, the data, the key (never whole), the logs."""
    log.info("")
    log.info("ManyAngles is up")
    if console:
        log.info("  Console  http://127.0.0.1:%d", args.console_port)
    log.info("  API      %s/v1   (OpenAPI docs: %s/docs)", base, base)
    if settings.store_url:
        log.info("  gallery  %s (PostgreSQL)", safe_url(settings.store_url))
    else:
        log.info("  data     %s", settings.data_dir.resolve())
    where = "MANYANGLES_API_KEY" if settings.api_key else f"{settings.data_dir.resolve() / 'api_key'}"
    log.info("  API key  %s...%s (admin; the whole key: %s%s)", key[:4], key[-2:], where, ", new" if created else "")
    log.info(
        "  logs     %s%s",
        log_file,
        "" if args.follow_logs else "   (requests and all; warnings and errors show here)",
    )
    # the whole key never reaches the terminal (a systemd journal or a CI log keeps it)
    source = "$MANYANGLES_API_KEY" if settings.api_key else f"$(cat {settings.data_dir.resolve() / 'api_key'})"
    log.info('  try      curl -H "X-API-Key: %s" %s/v1/persons', source, base)


def main() -> int:
    args = _parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    config_path, config = effective_config(args.config, args.out)
    application = config["applications"][0]
    try:
        settings = Settings.from_mapping(application.get("args") or {}, origin=config_path)
    except ManyAnglesError as exc:
        log.error("%s", exc.message)
        return 2
    for name in settings.unknown_environment():
        log.warning("environment variable %s names no setting; ignored", name)
    http = config.get("http_options", {})
    host, port = http.get("host", "127.0.0.1"), int(http.get("port", 8000))
    if not _ports_free(host, port, args.console_port):
        return 1
    key, created = ensure_api_key(settings)
    base = f"http://{host}:{port}"
    log_dir = (args.out / "logs").resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "serve.log"

    # the proxy answers a lost API replica's requests in our error shape (serve/proxy_errors.py)
    ours = {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env = {**proxy_environment(), **os.environ, **ours}
    children = _Children(_start_serve(config_path, env, log_file, args.follow_logs))
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # even when started with SIGINT ignored (`cmd &` in a script)
    try:
        if not wait_healthy(f"{base}/v1/health", children.serve, args.timeout):
            log.error("the service did not come up; its log: %s", log_file)
            children.stop()
            return 1
        if args.console_port:
            console_env = {
                **env,
                "MANYANGLES_API_URL": base,
                "MANYANGLES_API_KEY": key,
                # on PostgreSQL the console reads the API's snapshots (no gallery file to read)
                **({} if settings.store_url else {"MANYANGLES_DATA_DIR": str(settings.data_dir.resolve())}),
            }
            children.start_console(args.console_port, console_env, settings.max_upload_bytes, log_dir)
        _banner(args, base, settings, key, created, log_file, children.console_up())
        describe_model(f"{base}/v1/health")
        log.info("Ctrl-C stops everything.")
        return children.serve.wait()
    except KeyboardInterrupt:
        children.stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
