"""Derives a CPU-only Serve config: no GPU requests, fractional CPUs that fit a 2-core machine."""

from __future__ import annotations

import copy
from typing import Any

CPU_RESOURCES = {"Generator": 0.25, "Embedder": 0.5, "API": 0.25}
# The same override as deployment options, for applications built in Python (tests, benches).
CPU_DEPLOYMENT_OPTIONS = {
    name: {"ray_actor_options": {"num_gpus": 0, "num_cpus": cpus}} for name, cpus in CPU_RESOURCES.items()
}


def cpu_override(config: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(config)
    for application in out.get("applications", []):
        for deployment in application.get("deployments", []):
            options = deployment.setdefault("ray_actor_options", {})
            options["num_gpus"] = 0
            if deployment.get("name") in CPU_RESOURCES:
                options["num_cpus"] = CPU_RESOURCES[deployment["name"]]
    return out
