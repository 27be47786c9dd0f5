"""The identify and verify timings behind the console's latency charts (search_runs): recorded
call by call, bounded, and holding no word of who was searched for or found."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from core.store.gallery import GalleryStore
from core.store.runs import SEARCH_KINDS, SearchRunRecord

from conftest import photo_bytes


def test_search_runs_are_recorded_newest_first_and_bounded(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    clock = store.search_clock("identify")
    clock.lap("analyze")
    clock.lap("search")
    clock.record(2)
    (run,) = store.search_runs()
    assert (run["kind"], run["faces"]) == ("identify", 2)
    assert set(run["timings_s"]) == {"analyze", "search", "total"} and run["total_s"] >= run["timings_s"]["search"]
    assert run["timings_s"]["total"] == pytest.approx(run["total_s"], abs=1e-5)

    for i in range(12):  # the table keeps the newest `keep` calls
        store.add_search_run(SearchRunRecord(SEARCH_KINDS[i % 3], 1, 0.01 * i, {"total": 0.01 * i}), keep=5)
    runs = store.search_runs()
    assert len(runs) == 5 and [r["total_s"] for r in runs] == pytest.approx([0.11, 0.10, 0.09, 0.08, 0.07])
    assert [r["id"] for r in runs] == sorted((r["id"] for r in runs), reverse=True)
    with pytest.raises(ValueError, match="kind"):
        store.add_search_run(SearchRunRecord("enroll", 1, 0.1, {}))


def test_search_runs_hold_no_biometric_data(tmp_path: Path):
    """Timings only: no column names a person, and none holds a name, an image or a vector."""
    store = GalleryStore(tmp_path)
    conn = sqlite3.connect(store.db_path)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(search_runs)")]
    conn.close()
    assert columns == ["id", "kind", "faces", "total_s", "timings_json", "created_at"]
    assert not [c for c in columns if "person" in c or "name" in c or "image" in c or "vector" in c]


def test_a_lost_timing_row_never_fails_the_call(tmp_path: Path, monkeypatch, caplog):
    store = GalleryStore(tmp_path)

    def broken(run: SearchRunRecord, keep: int = 0) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "add_search_run", broken)
    with caplog.at_level(logging.ERROR):
        store.search_clock("verify").record(2)  # logged, not raised
    assert "could not record the verify call's timings" in caplog.text


def test_identify_and_verify_record_their_timings(service):
    """The service times each call, stage by stage (the CLI's and the API's alike)."""
    service.enroll("Timed Obama", photo_bytes("Barack_Obama", 1))
    service.identify(photo_bytes("Barack_Obama", 2))
    service.verify(photo_bytes("Barack_Obama", 2), photo_bytes("Barack_Obama", 3))
    service.verify_person("Timed Obama", photo_bytes("Barack_Obama", 3))
    runs = service.store.search_runs()
    assert [(r["kind"], r["faces"]) for r in runs] == [("verify_person", 1), ("verify", 2), ("identify", 1)]
    assert [set(r["timings_s"]) for r in runs] == [
        {"analyze", "score", "total"},
        {"analyze", "compare", "total"},
        {"analyze", "search", "total"},
    ]
    assert all(0 < r["timings_s"]["analyze"] <= r["total_s"] for r in runs)
