"""Parquet snapshots of the gallery tables: typed columns, batches, a subset of columns."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import InvalidInput, StoreSchemaError
from core.store import snapshot as snapshots
from core.store.gallery import GalleryStore

from records import enrollment, gallery_at_schema


def read(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def test_empty_tables_have_typed_columns(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    for table in snapshots.TABLES:
        snapshot = read(snapshots.export_table(store, table))
        assert snapshot.num_rows == 0 and snapshot.column_names == list(snapshots.COLUMNS[table])
    assert read(snapshots.export_table(store, "embeddings")).schema.field("det_score").type == pa.float64()


def test_batches_join_into_one_table_in_id_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_store):
    monkeypatch.setattr(snapshots, "BATCH_ROWS", 2)  # 3 images per person: batches split persons
    store = open_store(tmp_path)
    for seed in range(3):
        store.add_person(enrollment(f"Person {seed}", seed))
    plain = enrollment("Generated", 9, n_views=0)  # its one image: made by a generator
    generated = replace(plain, images=[replace(plain.images[0], generator="classic")])
    store.add_person(generated)  # the only image with a generator: NULL in every earlier batch
    images = read(snapshots.export_table(store, "images")).to_pylist()
    assert [r["id"] for r in images] == list(range(1, 11))
    assert [r["generator"] for r in images] == [None] * 9 + ["classic"]
    vectors = read(snapshots.export_table(store, "embeddings", with_vectors=True))
    assert vectors.num_rows == 10 and vectors.schema.field("vector").type == pa.binary()
    assert all(len(v) == 8 * 4 for v in vectors.column("vector").to_pylist())


def test_a_subset_of_columns_and_persons(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    first = store.add_person(enrollment("Ada", 1))
    store.add_person(enrollment("Bob", 2))
    slim = read(snapshots.export_table(store, "embeddings", columns=["source", "person_id"], person_ids=[first]))
    assert slim.column_names == ["source", "person_id"] and set(slim.column("person_id").to_pylist()) == {first}
    assert sorted(slim.column("source").to_pylist()) == ["augmented_v0", "augmented_v1", "original"]
    with_vector = read(snapshots.export_table(store, "embeddings", with_vectors=True, columns=["id"]))
    assert with_vector.column_names == ["id", "vector"]
    persons = read(snapshots.export_table(store, "persons", person_ids=[first]))
    assert persons.column("name").to_pylist() == ["Ada"]
    for table, columns, problem in [
        ("images", ["id", "bytes"], "images has no column 'bytes'"),
        ("persons", ["vector"], "persons has no column 'vector'"),
        ("secrets", None, "unknown table 'secrets'"),
    ]:
        with pytest.raises(InvalidInput, match=problem):
            snapshots.export_table(store, table, columns=columns)


def test_the_stamp_changes_with_every_gallery_change_and_only_then(tmp_path: Path):
    """Schema 9: any insert, update or delete of a person, image or embedding draws a new stamp;
    reads and exports leave it; a snapshot carries the stamp it was read at."""
    import sqlite3

    store = GalleryStore(tmp_path)
    seen = [snapshots.gallery_stamp(store)]

    def changed() -> None:
        stamp = snapshots.gallery_stamp(store)
        assert stamp not in seen
        seen.append(stamp)

    pid = store.add_person(enrollment("Ada", 1))
    changed()
    store.list_persons()
    store.person_detail(pid)
    exported = snapshots.export_snapshot(store, "embeddings", columns=["person_id", "source"])
    assert exported.stamp == seen[-1] == snapshots.gallery_stamp(store)
    assert read(exported.data).num_rows == 3
    store.rename_person(pid, "Ada B")
    changed()
    for table in ("persons", "images", "embeddings"):  # even an update that changes no value
        with sqlite3.connect(store.db_path) as conn:
            conn.execute(f"UPDATE {table} SET created_at = created_at WHERE id = (SELECT min(id) FROM {table})")
        changed()
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("DELETE FROM embeddings WHERE id = (SELECT max(id) FROM embeddings)")
    changed()
    store.delete_person(pid)  # the person, images and embeddings (cascade)
    changed()
    assert len(seen) == 8 and all(len(s) == 16 for s in seen)


def test_a_schema_8_gallery_gains_a_stamp(tmp_path: Path):
    import sqlite3

    from core.store.db import SqliteDatabase
    from core.store.schema import SCHEMA_VERSION

    gallery_at_schema(tmp_path, 8).close()
    with pytest.raises(StoreSchemaError, match="no stamp"):  # before the migration
        snapshots.gallery_stamp(SqliteDatabase(tmp_path / "gallery.db", 1.0))
    store = GalleryStore(tmp_path)
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    before = snapshots.gallery_stamp(store)
    store.add_person(enrollment("Ada", 1))
    assert snapshots.gallery_stamp(store) != before
