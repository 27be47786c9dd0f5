"""The run log: what each generation call and each enrollment took (the console's latency charts).

Mixed into GalleryStore, which provides the connections; an enrollment's generation run is
written inside the enrollment's own transaction (``_insert_generation_run``).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager

from core.store.records import EnrollmentRunRecord, GenerationRunRecord
from core.store.sqlutil import rowid, utc_now


class RunLog:
    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _insert_generation_run(
        self, conn: sqlite3.Connection, run: GenerationRunRecord, person_id: int | None, now: str
    ) -> int:
        return rowid(
            conn.execute(
                "INSERT INTO generation_runs(person_id, generator, device, dtype, num_views, "
                "num_accepted, steps, strength, total_s, peak_mem_bytes, views_json, stages_json, created_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM generation_runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [
            {**dict(row), "views": json.loads(row["views_json"]), "stages": json.loads(row["stages_json"])}
            for row in rows
        ]

    def add_enrollment_run(self, run: EnrollmentRunRecord) -> int:
        with self._transaction() as conn:
            return rowid(
                conn.execute(
                    "INSERT INTO enrollment_runs(person_id, model, num_views, num_accepted, total_s, timings_json, "
                    "created_at) VALUES (?,?,?,?,?,?,?)",
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
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM enrollment_runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{**dict(row), "timings_s": json.loads(row["timings_json"])} for row in rows]
