"""The gallery store on SQLite and PostgreSQL: schema, atomic enrollment, deletion, thresholds."""

from __future__ import annotations

import sqlite3
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidName, PersonExists, PersonNotFound, StoreSchemaError
from core.store.gallery import GalleryStore
from core.store.records import Enrollment, StoredThreshold
from core.store.schema import SCHEMA_VERSION

from records import enrollment, gallery_at_schema, image, store_contents, stored_image_bytes


def test_schema_pragmas_and_version(tmp_path: Path):
    store = GalleryStore(tmp_path)
    conn = sqlite3.connect(store.db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"persons", "images", "embeddings", "generation_runs", "thresholds"} <= tables
    conn.close()
    GalleryStore(tmp_path)  # reopening migrates nothing and fails nothing


def test_newer_schema_is_refused(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    if store.db.kind == "sqlite":
        with sqlite3.connect(store.db_path) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    else:
        with store.write_lock() as conn:
            conn.execute("UPDATE store_meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreSchemaError, match="newer"):
        open_store(tmp_path)


def test_postgres_schema_matches_sqlite_column_for_column(tmp_path: Path, postgres):
    """Same tables, same columns in the same order (a snapshot, an export, ``SELECT *`` read either
    the same way); PostgreSQL adds only the image bytes' table."""
    lite = GalleryStore(tmp_path / "lite")
    pg = GalleryStore(tmp_path / "pg", url=postgres.new_database())
    with lite.reader() as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        lite_columns = {
            t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables if not t.startswith("sqlite_")
        }
    with pg.reader() as conn:
        pg_columns: dict[str, list[str]] = {}
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "ORDER BY table_name, ordinal_position"
        ):
            pg_columns.setdefault(table, []).append(column)
    assert pg_columns.pop("image_blobs") == ["path", "data"]
    assert pg_columns == lite_columns
    pg.close()


def test_enroll_read_and_gallery(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    pid = store.add_person(enrollment("Ada", 1))
    store.add_person(enrollment("Bob", 2, n_views=0))
    assert [p.name for p in store.list_persons()] == ["Ada", "Bob"]
    detail = store.person_detail(pid)
    assert [i.source for i in detail.images] == ["original", "augmented_v0", "augmented_v1"]
    assert detail.embedding_counts == {"m1": {"augmented_v0": 1, "augmented_v1": 1, "original": 1}}
    record, data = store.image(pid, detail.images[0].id)
    assert data == b"photo of Ada" and (tmp_path / record.path).is_file() != store.blobs.in_database
    assert record.path.startswith(f"images/{record.sha256[:2]}/{record.sha256}")
    gallery = store.load_gallery("m1")
    assert gallery.vectors.shape == (4, 8) and gallery.vectors.dtype == np.float32
    assert list(gallery.person_ids) == [pid, pid, pid, pid + 1]
    np.testing.assert_allclose(np.linalg.norm(gallery.vectors, axis=1), 1.0, rtol=1e-6)
    assert store.load_gallery("other-model").size == 0
    runs = store.generation_runs()
    assert len(runs) == 2 and runs[0]["views"] == [{"view": "v0"}]


def test_duplicate_name_changes_nothing(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    store.add_person(enrollment("Ada", 1))
    before = store_contents(store)
    with pytest.raises(PersonExists):
        store.add_person(enrollment("Ada", 3))  # other bytes: new files would be written
    assert store_contents(store) == before


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "Tab\tName", "\u202eevil", "x" * 201])
def test_bad_names(tmp_path: Path, name: str, open_store):
    store = open_store(tmp_path)
    with pytest.raises(InvalidName):
        store.add_person(enrollment(name, 1))


@pytest.mark.parametrize("name", ["\u0639\u0644\u06cc\u200c\u0631\u0636\u0627", "Zoe\u0308 \U0001f469\u200d\U0001f52c"])
def test_names_spelt_with_joiners_are_kept(tmp_path: Path, name: str, open_store):
    """Alireza in Persian is written with a zero-width non-joiner; emoji sequences use a joiner."""
    store = open_store(tmp_path)
    stored = store.find_person(name) if store.add_person(enrollment(name, 1)) else None
    assert stored is not None and stored.name == unicodedata.normalize("NFC", name)
    assert "\u200c" in stored.name or "\u200d" in stored.name


def test_failure_after_first_embedding_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_store):
    store = open_store(tmp_path)
    store.add_person(enrollment("Bob", 2))
    before = store_contents(store)
    calls = []
    real_insert = GalleryStore._insert_embedding

    def failing_insert(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash after the first embedding was written")
        return real_insert(self, *args, **kwargs)

    monkeypatch.setattr(GalleryStore, "_insert_embedding", failing_insert)
    with pytest.raises(RuntimeError, match="simulated"):
        store.add_person(enrollment("Ada", 1))
    assert len(calls) == 2
    assert store_contents(store) == before
    monkeypatch.undo()
    assert [p.name for p in store.list_persons()] == ["Bob"]
    assert store.load_gallery("m1").size == 3


def test_delete_erases_rows_and_files_but_keeps_shared_files(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    ada = store.add_person(enrollment("Ada", 1))
    # Carol was enrolled from the very same photo as Ada: the file is shared.
    shared = enrollment("Carol", 5, n_views=0)
    shared = Enrollment("Carol", [image(b"photo of Ada")], shared.embeddings[:1])
    carol = store.add_person(shared)
    assert len(stored_image_bytes(store)) == 3
    counts = store.delete_person(ada)
    assert counts == {"images": 3, "embeddings": 3, "files": 2}
    assert stored_image_bytes(store) == [b"photo of Ada"]
    assert store.image(carol, store.person_detail(carol).images[0].id)[1] == b"photo of Ada"
    with store.reader() as conn:
        for table in ("images", "embeddings", "generation_runs"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE person_id = ?", (ada,)).fetchone()[0] == 0
    with pytest.raises(PersonNotFound):
        store.delete_person(ada)
    with pytest.raises(PersonNotFound):
        store.find_person("Ada")


def test_thresholds_roundtrip(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    assert store.get_threshold("m1", "fpir", 0.01, "max") is None
    store.set_threshold(StoredThreshold("m1", "fpir", "max", 0.01, 0.93, 400, "faces", "now"))
    store.set_threshold(StoredThreshold("m1", "fpir", "max", 0.01, 0.94, 500, "faces", "later"))
    store.set_threshold(StoredThreshold("m1", "fpir", "mean", 0.01, 0.92, 500, "faces", "later"))
    store.set_threshold(StoredThreshold("m1", "gate_fmr", "", 0.01, 0.97, 9000, "faces", "later"))
    assert store.get_threshold("m1", "fpir", 0.01, "mean").threshold == 0.92  # one per rule
    stored = store.get_threshold("m1", "fpir", 0.01, "max")
    assert stored is not None and stored.threshold == 0.94 and stored.n_negative == 500
    assert store.get_threshold("m1", "gate_fmr", 0.01).threshold == 0.97
    assert store.get_threshold("m1", "fpir", 0.1, "max") is None
    assert stored.person_fmr is None and stored.gallery_size is None  # not measured
    assert stored.fmr_pairs is None
    store.set_threshold(StoredThreshold("m1", "fpir", "top2", 0.01, 0.95, 500, "faces", "t", 1.25e-4, 66, 64_000))
    top2 = store.get_threshold("m1", "fpir", 0.01, "top2")
    assert top2 is not None and (top2.person_fmr, top2.gallery_size, top2.fmr_pairs) == (1.25e-4, 66, 64_000)


def test_gallery_version_changes_with_content(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    v0 = store.gallery_version("m1")
    pid = store.add_person(enrollment("Ada", 1))
    v1 = store.gallery_version("m1")
    store.delete_person(pid)
    store.add_person(enrollment("Ada", 1))
    assert len({v0, v1, store.gallery_version("m1")}) == 3


def test_migration_keeps_thresholds_under_the_max_rule(tmp_path: Path):
    import sqlite3

    from core.store.schema import MIGRATIONS, _statements

    conn = sqlite3.connect(tmp_path / "gallery.db", isolation_level=None)
    for statement in _statements(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO thresholds VALUES ('m1', 'fpir', 0.01, 0.93, 400, 'faces', 'then')")
    conn.execute("INSERT INTO thresholds VALUES ('m1', 'gate_fmr', 0.001, 0.92, 9000, 'faces', 'then')")
    conn.close()
    store = GalleryStore(tmp_path)
    assert store.get_threshold("m1", "fpir", 0.01, "max").threshold == 0.93
    assert store.get_threshold("m1", "fpir", 0.01, "max").person_fmr is None  # unmeasured then
    assert store.get_threshold("m1", "gate_fmr", 0.001).threshold == 0.92
    assert store.get_threshold("m1", "fpir", 0.01, "mean") is None


def test_migration_to_model_versions(tmp_path: Path):
    """A version-4 gallery: its models become 'retired' rows, a duplicate (image, model) vector is
    dropped, (image, model) becomes unique, and removals are logged from then on."""
    from core.store.model_versions import active_model, list_models, register_model

    conn = gallery_at_schema(tmp_path, 4)
    conn.execute("INSERT INTO persons VALUES (1, 'a', 'then')")
    conn.execute(
        "INSERT INTO images VALUES (1, 1, 'ab', 'images/ab/x.jpg', 'original', 'o.jpg', 'image/jpeg', "
        "1, 1, 1, NULL, 'then')"
    )
    vector = np.ones(4, "<f4").tobytes()
    for _ in range(2):  # the same image embedded twice by one model
        conn.execute(
            "INSERT INTO embeddings(person_id, image_id, source, model, dim, vector, det_score, bbox_x1, "
            "bbox_y1, bbox_x2, bbox_y2, created_at) VALUES (1, 1, 'original', 'm1', 4, ?, 0.9, 0, 0, 1, 1, "
            "'then')",
            (vector,),
        )
    conn.close()
    store = GalleryStore(tmp_path)
    assert [(m.name, m.status, m.num_embeddings) for m in list_models(store)] == [("m1", "retired", 1)]
    assert active_model(store) is None
    with pytest.raises(sqlite3.IntegrityError), sqlite3.connect(tmp_path / "gallery.db") as raw:
        raw.execute(
            "INSERT INTO embeddings(person_id, image_id, source, model, dim, vector, det_score, bbox_x1, "
            "bbox_y1, bbox_x2, bbox_y2, created_at) VALUES (1, 1, 'original', 'm1', 4, ?, 0.9, 0, 0, 1, 1, "
            "'now')",
            (vector,),
        )
    register_model(store, "m1", 4, {"embedder": "dlib"}, {"max": 0.9}, activate_if_none=True)  # a service's start
    assert active_model(store).name == "m1"
    store.delete_person(1)
    with sqlite3.connect(tmp_path / "gallery.db") as raw:
        assert raw.execute("SELECT model FROM embedding_removals").fetchall() == [("m1",)]
        (removed_at,) = raw.execute("SELECT removed_at FROM embedding_removals").fetchone()  # schema 7
        assert abs(removed_at - time.time()) < 60
        assert raw.execute("SELECT value FROM store_meta WHERE key = 'removals_floor'").fetchone() == (0,)
