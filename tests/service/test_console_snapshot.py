"""The console's in-memory gallery snapshot (console/analytics.py) and its local source
(console/local_tables.py), kept up to date by the store's change log."""

from __future__ import annotations

import httpx
import pytest

from conftest import AUTH, FORCE, KEY, REPO, photo_bytes

PAGES = REPO / "console" / "app_pages"


@pytest.mark.parametrize("where", ["remote", "local"])
def test_the_snapshot_re_reads_only_the_persons_that_changed(console_env: httpx.Client, where: str):
    """The console keeps its snapshot by change token, of a remote service (HTTP) or of the store
    on this machine: unchanged while nothing changed, then only the enrolled or deleted person's
    rows re-read, equal to a fresh read each time; a token the gallery no longer knows (a restore)
    means a fresh read."""
    from dataclasses import replace

    from console.analytics import SNAPSHOT_COLUMNS, RemoteTables, Snapshot, SnapshotCache, connect, persons_page
    from console.client import ApiClient
    from console.local_tables import LocalTables

    source = (
        RemoteTables(ApiClient(str(console_env.base_url), KEY))
        if where == "remote"
        else LocalTables(console_env.data_dir)  # type: ignore[attr-defined]
    )

    def tables(snapshot: Snapshot) -> dict[str, list[tuple]]:
        con = connect(snapshot)
        return {t: con.execute(f"SELECT * FROM g.{t} ORDER BY ALL").fetchall() for t in SNAPSHOT_COLUMNS}

    cache = SnapshotCache(source, max_age_s=3600.0)
    first = cache.get()
    assert first.token and first.etag and cache.get() is first  # within max_age: not even asked
    cache.expire()
    assert cache.get() is first  # asked: nothing changed
    created = console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": f"Snapshot Check {where}", **FORCE},  # Jennifer Aniston is enrolled by other tests
        files={"photo": ("p.jpg", photo_bytes("Jennifer_Aniston", 1), "image/jpeg")},
    )
    assert created.status_code == 201, created.text
    assert cache.get() is first  # still within max_age
    cache.expire()
    second = cache.get()
    assert second.updated == 1 and second.token != first.token and second.con is first.con  # a delta
    frame, total = persons_page(second, f"Snapshot Check {where}", "name", 0)
    assert total == 1 and list(frame["name"]) == [f"Snapshot Check {where}"]
    assert tables(second) == tables(Snapshot.load(source))

    assert console_env.delete(f"/v1/persons/{created.json()['person_id']}", headers=AUTH).status_code == 200
    cache.expire()
    third = cache.get()
    assert third.updated == 1 and persons_page(third, f"Snapshot Check {where}", "name", 0)[1] == 0
    assert tables(third) == tables(Snapshot.load(source))

    epoch, number = third.token.split("-")  # as if the API's gallery had been restored from a backup
    orphan = replace(third, token=f"{int(epoch, 16) ^ 1:016x}-{number}")
    reloaded = orphan.revalidated()
    assert reloaded.updated == 0 and reloaded.con is not third.con and reloaded.token == third.token
    assert tables(reloaded) == tables(third)


def test_local_tables_refuse_what_they_cannot_answer(tmp_path):
    """No change log (a store older than schema 10), a token of another copy or from the future, a
    malformed token: no answer (the console reads the tables again); unknown tables or columns: an
    error naming them. Rows of persons read by id come back typed even when none matched."""
    from dataclasses import replace

    from console.local_tables import LocalTables
    from core.store.gallery import GalleryStore

    from records import enrollment, gallery_at_schema

    (tmp_path / "old").mkdir()
    gallery_at_schema(tmp_path / "old", 9).close()
    assert LocalTables(tmp_path / "old").changes() is None

    store = GalleryStore(tmp_path / "new")
    local = LocalTables(tmp_path / "new")
    start = local.changes()
    assert start is not None and start.complete and not start.person_ids
    person_id = store.add_person(enrollment("Local One", seed=1))
    epoch, seq = start.token.split("-")
    changed = local.changes(start.token)
    assert changed is not None and changed.person_ids == (person_id,) and not changed.deleted
    for token in (f"{int(epoch, 16) ^ 1:016x}-{seq}", f"{epoch}-{int(changed.token.split('-')[1]) + 1}", "x-1", "nope"):
        assert local.changes(token) is None, token
    assert local.changes(start.token, limit=0) == replace(changed, person_ids=(), complete=False)
    with pytest.raises(ValueError, match="no table 'nope'"):
        local.rows("nope")
    with pytest.raises(ValueError, match="no column"):
        local.rows("persons", ["id", "shoe_size"])
    none = local.rows("embeddings", ["person_id", "model"], person_ids=[person_id + 1000])
    assert none.num_rows == 0 and [str(t) for t in none.schema.types] == ["int64", "string"]
    mine = local.rows("embeddings", person_ids=[person_id], vectors=True)
    assert set(mine.column("person_id").to_pylist()) == {person_id} and "vector" in mine.column_names
    assert "vector" not in local.rows("embeddings", person_ids=[person_id]).column_names
    store.delete_person(person_id)
    gone = local.changes(changed.token)
    assert gone is not None and gone.deleted and gone.person_ids == ()  # erased: the log names nobody


def test_the_console_reads_the_gallery_snapshot_at_start(console_env: httpx.Client):
    """Opening the console (any page, signed in) starts the Gallery's first read in the
    background; the Gallery page then answers from that snapshot instead of reading every table
    itself."""
    import threading

    import streamlit as st
    from streamlit import config as streamlit_config
    from streamlit.testing.v1 import AppTest

    from console import gallery_source

    from console_pages import page

    st.cache_resource.clear()  # as a fresh console process: no snapshot yet (earlier tests made one)
    where = str(console_env.data_dir)  # type: ignore[attr-defined]
    assert gallery_source.snapshots(where, KEY)._snapshot is None
    before = streamlit_config.get_option("server.address")
    streamlit_config.set_option("server.address", "127.0.0.1")  # as make run starts it: the local admin signed in
    try:
        AppTest.from_file(str(REPO / "console" / "app.py"), default_timeout=240).run()  # opens on Enroll
    finally:
        streamlit_config.set_option("server.address", before)
    cache = gallery_source.snapshots(where, KEY)
    for thread in threading.enumerate():
        if thread.name == "gallery-warm":
            thread.join(timeout=120)
    warmed = cache._snapshot
    assert warmed is not None and warmed.token  # read without anyone visiting the Gallery
    gallery = page("gallery")
    assert not gallery.exception, gallery.exception
    assert cache._snapshot is warmed  # re-checked by change token, not read again
