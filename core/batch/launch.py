"""Start a batch job in the background (the API's routes): a ``manyangles reembed`` or
``manyangles duplicates`` process with this service's settings, its progress in the ``jobs``
table, its log under the data dir."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from core.settings import ENV_PREFIX, Settings
from core.store.gallery import GalleryStore
from core.store.jobs import JobRecord, finish_job, get_job, set_pid, start_job

REPO = Path(__file__).resolve().parents[2]


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as MANYANGLES_* variables (the child builds the very same Settings)."""
    env = {}
    for name, value in settings.model_dump(mode="json", exclude={"api_key"}).items():  # the job needs no key
        env[ENV_PREFIX + name.upper()] = "" if value is None else str(value)
    return env


def launch_reembed(
    settings: Settings, store: GalleryStore, embedder: str, switch: bool = True, allow_missing: bool = False
) -> JobRecord:
    """``manyangles reembed`` with ``embedder`` in the background (refused while another runs)."""
    job_id = start_job(store, "reembed", embedder, 0)  # refused while another re-embedding runs
    command = ["reembed", "--model", embedder, "--job", str(job_id)]
    if settings.reembed_address:
        command += ["--address", settings.reembed_address]
    if not switch:
        command.append("--no-switch")
    if allow_missing:
        command.append("--allow-missing")
    return _spawn(settings, store, job_id, "reembed", command)


def launch_duplicates(settings: Settings, store: GalleryStore, model: str) -> JobRecord:
    """``manyangles duplicates`` over the whole gallery in the background (refused while another runs)."""
    job_id = start_job(store, "duplicates", model, 0)
    return _spawn(settings, store, job_id, "duplicates", ["duplicates", "--job", str(job_id)])


def _spawn(settings: Settings, store: GalleryStore, job_id: int, kind: str, arguments: list[str]) -> JobRecord:
    """Run ``python -m core ARGUMENTS`` with this service's settings for job ``job_id``, its
    output in ``logs/KIND-ID.log`` under the data dir."""
    logs = settings.data_dir / "logs"
    logs.mkdir(mode=0o700, parents=True, exist_ok=True)  # on PostgreSQL nothing else made the data dir
    command = [sys.executable, "-m", "core", *arguments]
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(settings_environment(settings))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.pop("RAY_ADDRESS", None)  # a Serve replica's: a re-embedding picks its cluster from reembed_address
    try:
        fd = os.open(logs / f"{kind}-{job_id}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as log_file:
            child = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=log_file,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
    except OSError as exc:
        finish_job(store, job_id, False, f"could not start: {exc}")
        raise
    # reaps the child when it ends (an unreaped one would look alive to the next job's check)
    threading.Thread(target=child.wait, name=f"{kind}-{job_id}", daemon=True).start()
    set_pid(store, job_id, child.pid)
    record = get_job(store, job_id)
    assert record is not None
    return record
