"""Ray and Serve on loopback for a benchmark, started as ``make run`` starts them."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench.local_serve")


def start_local_serve(num_cpus: int | None = None) -> int:
    """A local Ray (its workers import this checkout) and Serve's HTTP proxy on a free loopback
    port, which is returned. The proxy loads serve/proxy_errors.py's callback, as every ``make
    run`` and ``ray start`` of docs/operations.md does (an operator's own value kept): a photo's
    body then travels with its request (serve/proxy_body.py)."""
    import ray
    from ray import serve

    from serve.proxy_errors import proxy_environment

    for name, value in proxy_environment().items():  # the local Ray's processes inherit it
        os.environ.setdefault(name, value)
        if os.environ[name] != value:
            log.warning("%s=%s (the environment's): not the service's proxy callback", name, os.environ[name])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    return port
