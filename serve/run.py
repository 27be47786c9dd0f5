"""``make run``: start Ray Serve with serve_config.yaml, print the URLs and the API key, and stop
everything cleanly on Ctrl-C.

On a machine without an NVIDIA GPU the Generator's ``num_gpus: 1`` would never be placed, so a
CPU override (num_gpus 0, fractional CPUs) is applied to a copy of the config, and we say so.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from serve.args import AppArgs
from serve.auth import ensure_api_key
from serve.cpu_override import cpu_override

log = logging.getLogger("manyangles.run")
REPO = Path(__file__).resolve().parents[1]


def has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def effective_config(path: Path, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    config = yaml.safe_load(path.read_text())
    if has_gpu():
        return path, config
    config = cpu_override(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "serve_config.cpu.yaml"
    target.write_text("# written by `make run`: serve_config.yaml with the CPU override\n" + yaml.safe_dump(config, sort_keys=False))
    log.warning("no NVIDIA GPU found: applying the CPU override (num_gpus: 0) -> %s", target)
    return target, config


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the ManyAngles service on Ray Serve")
    parser.add_argument("--config", type=Path, default=REPO / "serve_config.yaml")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for readiness")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    config_path, config = effective_config(args.config, REPO / "out")
    application = config["applications"][0]
    settings = AppArgs(**(application.get("args") or {})).to_settings()
    key, created = ensure_api_key(settings)
    http = config.get("http_options", {})
    base = f"http://{http.get('host', '127.0.0.1')}:{http.get('port', 8000)}"

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    serve_bin = Path(sys.executable).with_name("serve")
    process = subprocess.Popen([str(serve_bin), "run", str(config_path)], cwd=REPO, env=env, start_new_session=True)

    def stop(*_: object) -> None:
        if process.poll() is None:
            log.info("stopping Ray Serve ...")
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        if not wait_healthy(f"{base}/v1/health", process, args.timeout):
            log.error("the service did not come up (see the Ray Serve output above)")
            stop()
            return 1
        log.info("")
        log.info("ManyAngles is up")
        log.info("  API      %s/v1   (OpenAPI docs: %s/docs)", base, base)
        log.info("  data     %s", settings.data_dir)
        log.info("  API key  %s%s", key, "   (new: stored in data dir/api_key)" if created else "")
        log.info("  try      curl -H 'X-API-Key: %s' %s/v1/persons", key, base)
        log.info("Ctrl-C stops everything.")
        return process.wait()
    except KeyboardInterrupt:
        stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
