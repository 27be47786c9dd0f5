"""Ray nodes as an operator starts them (``ray start``), each a process group of its own on
loopback with its own ports and resources: a head, then nodes that join it by address. Killing a
node's group kills its raylet and every worker on it, as a host that dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from conftest import REPO, free_port

NODE_PORT_FLAGS = (
    "node-manager-port",
    "object-manager-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
)


@dataclass
class RayNode:
    process: subprocess.Popen[str]
    resources: dict[str, float]

    def kill(self) -> None:
        """SIGKILL to the node's whole process group: its raylet, object store and workers."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # --block: the node stops its processes
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class RayCluster:
    temp: Path
    env: dict[str, str] = field(default_factory=dict)  # for every process of every node and client
    temps: list[Path] = field(default_factory=list)  # the joined nodes' temp dirs
    nodes: list[RayNode] = field(default_factory=list)
    # every port handed out for this cluster: a node's ports are all drawn before it binds any,
    # so a port drawn twice would make its ``ray start`` fail
    given: set[int] = field(default_factory=set)
    port: int = field(init=False)
    dashboard_port: int = field(init=False)

    def __post_init__(self) -> None:
        self.port, self.dashboard_port = self.new_port(), self.new_port()

    def new_port(self) -> int:
        """A free port this cluster was not given yet."""
        while (port := free_port()) in self.given:
            pass
        self.given.add(port)
        return port

    def client_env(self, **extra: str) -> dict[str, str]:
        """The environment of a node or of a client of this cluster: the same Ray authentication
        mode on both sides (Ray 2.60's ``ray start`` turns token authentication on, and a process
        that ran ``ray.init`` carries ``RAY_AUTH_MODE=token`` to its children: this session's own
        Ray does); on loopback, none."""
        ours = {"PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
        return {**os.environ, **ours, **self.env, **extra}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, args: list[str], cpus: int, resources: dict[str, float]) -> RayNode:
        ports = [x for flag in NODE_PORT_FLAGS for x in (f"--{flag}", str(self.new_port()))]
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("ray")),
                "start",
                "--block",
                "--node-ip-address",
                "127.0.0.1",
                "--num-cpus",
                str(cpus),
                "--resources",
                json.dumps(resources),
                "--disable-usage-stats",
                *args,
                *ports,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            cwd=REPO,
            env=self.client_env(),
        )
        node = RayNode(process, resources)
        self.nodes.append(node)
        return node

    def head(self, cpus: int, resources: dict[str, float], dashboard: bool = False) -> RayNode:
        """The head; ``dashboard``: with Ray's dashboard (the state API) on ``dashboard_port``."""
        args = ["--head", "--port", str(self.port), "--temp-dir", str(self.temp), "--ray-client-server-port"]
        args += [str(self.new_port()), "--include-dashboard", "true" if dashboard else "false"]
        if dashboard:
            args += ["--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard_port)]
        return self._start(args, cpus, resources)

    def join(self, cpus: int, resources: dict[str, float]) -> RayNode:
        """A node that joins the head, its files (logs, sockets) in a temp dir of its own."""
        temp = self.temp.with_name(f"{self.temp.name}-{len(self.nodes)}")
        self.temps.append(temp)
        return self._start(["--address", self.address, "--temp-dir", str(temp)], cpus, resources)

    def wait_for(self, nodes: int, timeout_s: float = 120) -> None:
        """Until ``nodes`` nodes are alive in the cluster."""
        script = (
            "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout_s
        alive = 0
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process.poll() is not None:
                    raise RuntimeError(f"a Ray node exited: {(node.process.stderr or [''])[-1:]}")
            done = subprocess.run(
                [sys.executable, "-c", script, self.address],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env=self.client_env(),
            )
            alive = int(done.stdout.strip() or 0) if done.returncode == 0 else 0
            if alive >= nodes:
                return
            time.sleep(1)
        raise TimeoutError(f"{alive} of {nodes} Ray nodes came up")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        subprocess.run(["rm", "-rf", str(self.temp), *map(str, self.temps)], check=False)
