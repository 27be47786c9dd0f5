"""The access log: who did what, over HTTP and on the command line (core/store/access_log.py,
GET /v1/access-log, ``manyangles access-log``).

The store's rules on a real SQLite file (one row per person, erased persons' ids go, retention),
then the session's real Serve application: scoped keys enroll, identify, rename, remove an image
and delete, and the log names each key, action and person, until the person is erased."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import cli


def _env(store) -> dict[str, str]:
    """The environment that points the command line at ``store`` (its PostgreSQL URL)."""
    return {"MANYANGLES_STORE_URL": store.db.url} if store.blobs.in_database else {}


def _person(store, name: str) -> int:
    with store.write_lock() as conn:
        conn.execute("INSERT INTO persons(name, created_at) VALUES (?, '2026-11-28T00:00:00.000+00:00')", (name,))
        return int(conn.execute("SELECT id FROM persons WHERE name = ?", (name,)).fetchone()[0])


def test_rows_per_person_filters_and_pages(tmp_path: Path, open_store):
    from core.store.access_log import Caller, access_page, log_access

    store = open_store(tmp_path / "data")
    ada, bob = _person(store, "Ada"), _person(store, "Bob")
    admin, reader = Caller(None, "service key", "admin"), Caller(7, "front desk", "identify")
    log_access(store, admin, "enroll", [ada], "1 image(s), 1 embedding(s)")
    log_access(store, reader, "identify", [ada, bob, ada], "2 face(s), 2 identified")  # ada once
    log_access(store, reader, "identify", [], "1 face(s), 0 identified")  # no one: one row
    log_access(store, reader, "identify", [999], "1 face(s), 1 identified")  # deleted meanwhile: no one
    with pytest.raises(ValueError, match="unknown action"):
        log_access(store, admin, "peek", [ada])

    entries, total = access_page(store, limit=10)
    assert total == 5 and [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)
    assert [(e.action, e.key_id, e.key_name, e.person_id) for e in entries] == [
        ("identify", 7, "front desk", None),
        ("identify", 7, "front desk", None),
        ("identify", 7, "front desk", bob),
        ("identify", 7, "front desk", ada),
        ("enroll", None, "service key", ada),
    ]
    assert [e.id for e in access_page(store, limit=2, offset=1)[0]] == [e.id for e in entries[1:3]]
    store.rename_person(ada, "Ada L")  # names are joined when read: the name of now
    assert [e.name for e in access_page(store, limit=10)[0]] == [None, None, "Bob", "Ada L", "Ada L"]
    assert access_page(store, limit=10, person_id=ada)[1] == 2
    assert access_page(store, limit=10, action="enroll")[1] == 1
    assert access_page(store, limit=10, key_name="front desk", person_id=bob)[1] == 1


def test_a_view_is_one_entry_per_key_and_person_per_window(tmp_path: Path, open_store):
    """Seeing a person's images writes ``view`` once per key and person per window: a second
    thumbnail, or the same page drawn again, writes nothing; another key, another person, or the
    same key after the window, one entry each; a person erased meanwhile, none."""
    from core.store.access_log import VIEW_WINDOW_S, Caller, access_page, log_view

    store = open_store(tmp_path / "data")
    ada, bob = _person(store, "Ada"), _person(store, "Bob")
    desk, admin = Caller(4, "front desk", "enroll"), Caller(None, "service key", "admin")
    assert log_view(store, desk, ada, "image 1") is True
    assert log_view(store, desk, ada, "image 2") is False  # the next thumbnail
    assert log_view(store, desk, ada, "image 1") is False  # the page drawn again
    assert log_view(store, admin, ada, "image 2") is True  # another key
    assert log_view(store, desk, bob, "image 3") is True  # another person
    assert log_view(store, Caller(None, "command line (ops)", "admin"), ada, "image 1") is True  # no id either
    assert log_view(store, desk, 999, "image 9") is False  # erased meanwhile: nothing to name

    def views() -> list[tuple[str, int | None, int | None, str]]:
        return [(e.key_name, e.key_id, e.person_id, e.detail) for e in access_page(store, 20, action="view")[0]]

    assert views() == [
        ("command line (ops)", None, ada, "image 1"),
        ("front desk", 4, bob, "image 3"),
        ("service key", None, ada, "image 2"),
        ("front desk", 4, ada, "image 1"),
    ]
    old = (datetime.now(UTC) - timedelta(seconds=VIEW_WINDOW_S + 1)).isoformat(timespec="milliseconds")
    recent = (datetime.now(UTC) - timedelta(seconds=VIEW_WINDOW_S - 60)).isoformat(timespec="milliseconds")
    with store.write_lock() as conn:  # the desk's view of Ada is past the window, its view of Bob not
        conn.execute("UPDATE access_log SET at = ? WHERE key_name = 'front desk' AND person_id = ?", (old, ada))
        conn.execute("UPDATE access_log SET at = ? WHERE key_name = 'front desk' AND person_id = ?", (recent, bob))
    assert log_view(store, desk, ada, "image 2") is True
    assert log_view(store, desk, bob, "image 3") is False
    assert views()[0] == ("front desk", 4, ada, "image 2") and len(views()) == 5


def test_a_time_window(tmp_path: Path, open_store):
    """``since`` is at or after, ``until`` before; a time without an offset is UTC, and one with an
    offset is compared in UTC."""
    from datetime import datetime, timedelta, timezone

    from core.store.access_log import Caller, access_page, log_access

    store = open_store(tmp_path / "data")
    for _ in range(3):
        log_access(store, Caller(None, "service key", "admin"), "verify", [], "same person: no")
    stamps = ["2026-11-27T23:59:59.999+00:00", "2026-11-28T00:00:00.000+00:00", "2026-11-28T09:30:00.000+00:00"]
    with store.write_lock() as conn:
        for row, at in zip((1, 2, 3), stamps):
            conn.execute("UPDATE access_log SET at = ? WHERE id = ?", (at, row))

    def ids(since: datetime | None = None, until: datetime | None = None) -> list[int]:
        return [e.id for e in access_page(store, 10, since=since, until=until)[0]]

    assert ids(since=datetime(2026, 11, 28)) == [3, 2]  # midnight UTC is in
    assert ids(until=datetime(2026, 11, 28)) == [1]  # and not before it
    assert ids(datetime(2026, 11, 28), datetime(2026, 11, 28, 9, 30)) == [2]
    paris = timezone(timedelta(hours=1))  # 10:30 in Paris is 09:30 UTC
    assert ids(since=datetime(2026, 11, 28, 10, 30, tzinfo=paris)) == [3]
    assert access_page(store, 10, since=datetime(2026, 11, 29))[1] == 0


def test_an_erased_person_leaves_no_id_and_old_entries_go(tmp_path: Path, open_store):
    from core.store.access_log import AccessLog, Caller, access_page, prune_access_log

    store = open_store(tmp_path / "data")
    ada, bob = _person(store, "Ada"), _person(store, "Bob")
    log = AccessLog(store, days=30)
    caller = Caller(3, "admin desk", "admin")
    log.record(caller, "enroll", [ada])
    log.record(caller, "enroll", [bob])
    store.delete_person(ada)
    log.record(caller, "delete_person", detail="1 images, 1 embeddings, 0 files")
    entries, total = access_page(store, limit=10)
    assert total == 3 and access_page(store, limit=10, person_id=ada)[1] == 0  # the actions stay, not the id
    assert [(e.action, e.person_id) for e in entries] == [("delete_person", None), ("enroll", bob), ("enroll", None)]

    with store.write_lock() as conn:  # an entry from 40 days ago
        conn.execute(
            "INSERT INTO access_log(at, key_id, key_name, action, person_id, detail) "
            "VALUES ('2026-01-01T00:00:00.000+00:00', 3, 'admin desk', 'verify', NULL, '')"
        )
    assert prune_access_log(store, days=30) == 1 and access_page(store, limit=10)[1] == 3
    assert prune_access_log(store, days=30) == 0


def test_the_cli_reads_the_log(tmp_path: Path, open_store):
    import json

    from core.store.access_log import Caller, log_access

    store = open_store(tmp_path / "data")
    ada = _person(store, "Ada")
    log_access(store, Caller(None, "service key", "admin"), "enroll", [ada], "1 image(s), 1 embedding(s)")
    log_access(store, Caller(4, "front desk", "identify"), "identify", [ada], "1 face(s), 1 identified")
    shown = cli(store.data_dir, "access-log", env=_env(store))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.strip().splitlines()
    assert "identify" in lines[0] and "front desk (key 4)" in lines[0] and f"person {ada} (Ada)" in lines[0]
    assert "enroll" in lines[1] and "service key" in lines[1] and lines[2] == "2 of 2 entries"
    as_json = json.loads(cli(store.data_dir, "--json", "access-log", "--key", "front desk", env=_env(store)).stdout)
    assert as_json["total"] == 1 and as_json["entries"][0]["key_id"] == 4
    bad = cli(store.data_dir, "access-log", "--action", "peek", env=_env(store))
    assert bad.returncode != 0 and "unknown action 'peek'" in bad.stderr
    assert (
        json.loads(cli(store.data_dir, "--json", "access-log", "--since", "2000-01-01", env=_env(store)).stdout)[
            "total"
        ]
        == 2
    )
    assert (
        json.loads(cli(store.data_dir, "--json", "access-log", "--until", "2000-01-01", env=_env(store)).stdout)[
            "total"
        ]
        == 0
    )
    for window in (["--since", "last week"], ["--since", "2026-11-28", "--until", "2026-11-27"]):
        refused = cli(store.data_dir, "access-log", *window, env=_env(store))
        assert refused.returncode == 3 and "--since" in refused.stderr, refused.stderr


def test_access_rows_by_hand():
    from console.access_view import access_rows

    entries = [
        {"id": 2, "at": "2026-11-28T20:10:00.123+00:00", "key_id": 4, "key_name": "front desk", "action": "identify",
         "person_id": 17, "detail": "1 face(s), 1 identified", "name": "Ada *L*"},
        {"id": 1, "at": "2026-11-28T20:00:00.000+00:00", "key_id": None, "key_name": "service key",
         "action": "delete_person", "person_id": None, "detail": "1 images, 1 embeddings, 1 files", "name": None},
    ]  # fmt: skip
    assert access_rows(entries) == [
        {"when (UTC)": "2026-11-28 20:10:00", "by": "front desk (key 4)", "action": "identify", "person": "Ada *L* (17)",
         "detail": "1 face(s), 1 identified"},
        {"when (UTC)": "2026-11-28 20:00:00", "by": "service key", "action": "delete_person", "person": "",
         "detail": "1 images, 1 embeddings, 1 files"},
    ]  # fmt: skip
