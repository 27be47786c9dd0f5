"""serve_config.yaml is the one source of replica resources, queue limits and batching.

``serve run serve_config.yaml`` reads it directly. Applications built in Python (the tests, the
benchmarks) take their deployment options from the same file through ``deployment_options``,
so no value is repeated in a decorator.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SERVE_CONFIG = REPO / "serve_config.yaml"

# A CPU-only machine cannot place num_gpus: 1; these fractions fit the deployments on 2 cores.
CPU_RESOURCES = {"Generator": 0.25, "Embedder": 0.5, "API": 0.25}
# Keys of a deployment entry in a Serve config that are `.options()` arguments as they stand.
_OPTION_KEYS = {
    "num_replicas",
    "max_ongoing_requests",
    "max_queued_requests",
    "user_config",
    "ray_actor_options",
    "health_check_period_s",
    "health_check_timeout_s",
    "graceful_shutdown_timeout_s",
    "graceful_shutdown_wait_loop_s",
    "autoscaling_config",
}


def read_config(path: Path = SERVE_CONFIG) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def cpu_override(config: dict[str, Any]) -> dict[str, Any]:
    """The config with no GPU requests and fractional CPUs (a machine without a GPU)."""
    out = copy.deepcopy(config)
    for application in out.get("applications", []):
        for deployment in application.get("deployments", []):
            options = deployment.setdefault("ray_actor_options", {})
            options["num_gpus"] = 0
            if deployment.get("name") in CPU_RESOURCES:
                options["num_cpus"] = CPU_RESOURCES[deployment["name"]]
    return out


def deployment_options(config: dict[str, Any] | None = None, cpu: bool = True) -> dict[str, dict[str, Any]]:
    """Per deployment name, the ``.options()`` that serve_config.yaml gives it."""
    config = read_config() if config is None else config
    if cpu:
        config = cpu_override(config)
    application = config["applications"][0]
    return {
        d["name"]: {k: copy.deepcopy(v) for k, v in d.items() if k in _OPTION_KEYS}
        for d in application.get("deployments", [])
    }
