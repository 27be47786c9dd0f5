"""The run log: what each generation call, each enrollment and each identify or verify call
took (the console's latency charts).

Mixed into GalleryStore, which provides the connections; an enrollment's generation run is
written inside the enrollment's own transaction (``_insert_generation_run``). An identify or
verify call is timed by a ``SearchClock`` (``search_clock``) and recorded without a word of who
was searched for or found; the table keeps the newest ``SEARCH_RUNS_KEPT`` calls.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from core.store.db import Connection, Database, as_dicts
from core.store.records import EnrollmentRunRecord, GenerationRunRecord
from core.store.sqlutil import rowid, utc_now

log = logging.getLogger(__name__)

SEARCH_KINDS = ("identify", "verify", "verify_person")  # verify: two photos; verify_person: a photo against a person
SEARCH_RUNS_KEPT = 10_000  # the newest identify and verify calls kept for the latency charts
SEARCH_RUN_WAIT_S = 0.25  # a timing row never holds a search up: while a long write holds the lock it is dropped


@dataclass(frozen=True)
class SearchRunRecord:
    """How long one identify or verify call took, stage by stage. Timings only: no person, name,
    image or vector (biometric data stays in the gallery's own tables)."""

    kind: str  # one of SEARCH_KINDS
    faces: int  # faces searched (identify) or compared
    total_s: float
    timings: dict[str, float]  # seconds per stage, "total" included


@dataclass
class SearchClock:
    """Times one identify or verify call, stage by stage (``lap``), and records it (``record``):
    a lost row is only logged, never the call's failure."""

    runs: RunLog
    kind: str
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._last = self.started

    def lap(self, stage: str) -> None:
        """The time since the previous lap (or the start) as ``stage``."""
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._last
        self._last = now

    def record(self, faces: int) -> None:
        total = time.perf_counter() - self.started
        rounded = {k: round(v, 6) for k, v in self.timings.items()} | {"total": round(total, 6)}
        try:
            self.runs.add_search_run(SearchRunRecord(self.kind, faces, total, rounded))
        except Exception:  # the answer stands; a lost timing row is only logged
            log.exception("could not record the %s call's timings", self.kind)


class RunLog:
    db: Database

    def _connect(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _insert_generation_run(
        self, conn: Connection, run: GenerationRunRecord, person_id: int | None, now: str
    ) -> int:
        return rowid(
            conn.execute(
                "INSERT INTO generation_runs(person_id, generator, device, dtype, num_views, "
                "num_accepted, steps, strength, total_s, peak_mem_bytes, views_json, stages_json, created_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (
                    person_id,
                    run.generator,
                    run.device,
                    run.dtype,
                    run.num_views,
                    run.num_accepted,
                    run.steps,
                    run.strength,
                    run.total_s,
                    run.peak_mem_bytes,
                    json.dumps(run.views),
                    json.dumps(run.stages),
                    now,
                ),
            )
        )

    def add_generation_run(self, run: GenerationRunRecord, person_id: int | None = None) -> int:
        with self._transaction() as conn:
            return self._insert_generation_run(conn, run, person_id, utc_now())

    def generation_runs(self, limit: int = 1000) -> list[dict[str, object]]:
        with self._connect() as conn:
            rows = as_dicts(conn.execute("SELECT * FROM generation_runs ORDER BY id DESC LIMIT ?", (limit,)))
        return [
            {**row, "views": json.loads(row["views_json"]), "stages": json.loads(row["stages_json"])} for row in rows
        ]

    def add_enrollment_run(self, run: EnrollmentRunRecord) -> int:
        with self._transaction() as conn:
            return rowid(
                conn.execute(
                    "INSERT INTO enrollment_runs(person_id, model, num_views, num_accepted, total_s, timings_json, "
                    "created_at) VALUES (?,?,?,?,?,?,?) RETURNING id",
                    (
                        run.person_id,
                        run.model,
                        run.num_views,
                        run.num_accepted,
                        run.total_s,
                        json.dumps(run.timings),
                        utc_now(),
                    ),
                )
            )

    def enrollment_runs(self, limit: int = 1000) -> list[dict[str, object]]:
        with self._connect() as conn:
            rows = as_dicts(conn.execute("SELECT * FROM enrollment_runs ORDER BY id DESC LIMIT ?", (limit,)))
        return [{**row, "timings_s": json.loads(row["timings_json"])} for row in rows]

    def search_clock(self, kind: str) -> SearchClock:
        """A clock for one identify or verify call (``kind``: one of SEARCH_KINDS), started now."""
        return SearchClock(self, kind)

    def add_search_run(self, run: SearchRunRecord, keep: int = SEARCH_RUNS_KEPT) -> None:
        """Record one call's timings, and drop the rows older than the newest ``keep``."""
        if run.kind not in SEARCH_KINDS:
            raise ValueError(f"search run kind must be one of {SEARCH_KINDS}, got {run.kind!r}")
        # a short wait, not the store's 30 s: an identification never waits on an enrollment,
        # import or re-embedding that holds the write lock. Nothing is read back, so PostgreSQL
        # gets the whole transaction in one round trip (db.py: ``brief``)
        with self.db.brief(SEARCH_RUN_WAIT_S) as conn:
            conn.execute(
                "INSERT INTO search_runs(kind, faces, total_s, timings_json, created_at) VALUES (?,?,?,?,?)",
                (run.kind, run.faces, run.total_s, json.dumps(run.timings), utc_now()),
            )
            # ids grow by one per row (a rolled-back insert may take one: then fewer are kept)
            conn.execute("DELETE FROM search_runs WHERE id <= (SELECT MAX(id) FROM search_runs) - ?", (keep,))

    def search_runs(self, limit: int = 1000) -> list[dict[str, object]]:
        """The newest identify and verify calls' timings, newest first."""
        with self._connect() as conn:
            rows = as_dicts(conn.execute("SELECT * FROM search_runs ORDER BY id DESC LIMIT ?", (limit,)))
        return [{**row, "timings_s": json.loads(row["timings_json"])} for row in rows]
