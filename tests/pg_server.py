"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` into a temporary folder, run
as the unprivileged ``postgres`` user when this process is root (PostgreSQL refuses root), on a
free loopback port; one database per gallery.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
USER = "manyangles"


def _binary(name: str) -> str:
    found = shutil.which(name) or next((f"{d}/{name}" for d in BIN_DIRS if Path(d, name).is_file()), None)
    if found is None:
        raise RuntimeError(
            f"{name} is not installed: apt-get install postgresql (the store's PostgreSQL tests need it)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    folder: Path
    port: int = 0
    fsync: bool = False  # tests: off (fast); benchmarks: on, as in production
    databases: dict[str, str] = field(default_factory=dict)

    def _as_owner(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)

    def start(self) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        data = self.folder / "data"
        subprocess.run(
            self._as_owner(
                _binary("initdb"), "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8", "--locale=C.UTF-8"
            ),
            check=True,
            capture_output=True,
        )
        self.port = _free_port()
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=400 "
            f"-c fsync={'on' if self.fsync else 'off'} -c shared_buffers=128MB"
        )
        subprocess.run(
            self._as_owner(
                _binary("pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
            ),
            check=True,
            capture_output=True,
        )
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = name or f"g{len(self.databases)}_{int(time.time() * 1000) % 10**8}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases[name] = self.url(name)
        return self.databases[name]

    def stop(self) -> None:
        subprocess.run(
            self._as_owner(_binary("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"),
            check=False,
            capture_output=True,
        )
