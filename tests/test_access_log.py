"""The access log: who did what, over HTTP and on the command line (core/store/access_log.py,
GET /v1/access-log, ``manyangles access-log``).

The store's rules on a real SQLite file (one row per person, erased persons' ids go, retention),
then the session's real Serve application: scoped keys enroll, identify, rename, remove an image
and delete, and the log names each key, action and person, until the person is erased."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import AUTH, KEY, off_process, photo, photo_bytes


def _store(tmp_path: Path):
    from core.store.gallery import GalleryStore

    return GalleryStore(tmp_path / "data")


def _person(store, name: str) -> int:
    with store.write_lock() as conn:
        conn.execute("INSERT INTO persons(name, created_at) VALUES (?, '2026-11-28T00:00:00.000+00:00')", (name,))
        return int(conn.execute("SELECT id FROM persons WHERE name = ?", (name,)).fetchone()[0])


def test_rows_per_person_filters_and_pages(tmp_path: Path):
    from core.store.access_log import Caller, access_page, log_access

    store = _store(tmp_path)
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


def test_a_view_is_one_entry_per_key_and_person_per_window(tmp_path: Path):
    """Seeing a person's images writes ``view`` once per key and person per window: a second
    thumbnail, or the same page drawn again, writes nothing; another key, another person, or the
    same key after the window, one entry each; a person erased meanwhile, none."""
    from core.store.access_log import VIEW_WINDOW_S, Caller, access_page, log_view

    store = _store(tmp_path)
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


def test_a_time_window(tmp_path: Path):
    """``since`` is at or after, ``until`` before; a time without an offset is UTC, and one with an
    offset is compared in UTC."""
    from datetime import datetime, timedelta, timezone

    from core.store.access_log import Caller, access_page, log_access

    store = _store(tmp_path)
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


def test_an_erased_person_leaves_no_id_and_old_entries_go(tmp_path: Path):
    from core.store.access_log import AccessLog, Caller, access_page, prune_access_log

    store = _store(tmp_path)
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

    with sqlite3.connect(store.db_path) as conn:  # an entry from 40 days ago
        conn.execute(
            "INSERT INTO access_log(at, key_id, key_name, action, person_id, detail) "
            "VALUES ('2026-01-01T00:00:00.000+00:00', 3, 'admin desk', 'verify', NULL, '')"
        )
    conn.close()
    assert prune_access_log(store, days=30) == 1 and access_page(store, limit=10)[1] == 3
    assert prune_access_log(store, days=30) == 0


def test_keys_actions_and_persons_over_http(api: httpx.Client):
    made = off_process(
        """
import json, sys
from core.store.gallery import GalleryStore
from core.store.keys import KeyStore
keys = KeyStore(GalleryStore(json.loads(sys.argv[1])["data_dir"]))
records = {scope: keys.create(f"access-log {scope}", scope) for scope in ("enroll", "identify")}
print(json.dumps({scope: [r.id, secret] for scope, (r, secret) in records.items()}))
""",
        data_dir=api.data_dir,  # type: ignore[attr-defined]
    )
    enroller = {"X-API-Key": made["enroll"][1]}
    searcher = {"Authorization": f"Bearer {made['identify'][1]}"}

    def log(**params: object) -> dict:
        answer = api.get("/v1/access-log", headers=AUTH, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    enrolled = api.post(
        "/v1/persons",
        headers=enroller,
        data={"name": "Logged Thaksin", "views": "bright"},
        files={"photo": ("p.jpg", photo_bytes("Thaksin_Shinawatra", 1), "image/jpeg")},
    )
    assert enrolled.status_code == 201, enrolled.text
    person = enrolled.json()["person_id"]
    try:
        found = api.post(
            "/v1/identify", headers=searcher, files={"photo": ("q.jpg", photo_bytes("Thaksin_Shinawatra", 2))}
        )
        assert found.json()["faces"][0]["identity"]["person_id"] == person, found.text
        refused = api.post(
            "/v1/persons",
            headers=enroller,
            data={"name": "Logged Nobody"},
            files={"photo": ("n.jpg", b"not an image", "image/jpeg")},
        )
        assert refused.status_code == 422  # refused: not logged
        assert api.patch(f"/v1/persons/{person}", headers=AUTH, data={"name": "Logged Thaksin S"}).status_code == 200
        view = next(
            i for i in api.get(f"/v1/persons/{person}", headers=AUTH).json()["images"] if i["source"] != "original"
        )
        for image, status in ((view["id"], 200), (view["id"], 200), (999_999, 404)):  # seen twice: one entry
            assert api.get(f"/v1/persons/{person}/images/{image}", headers=enroller).status_code == status
        assert api.get(f"/v1/persons/{person}/images/{view['id']}", headers=searcher).status_code == 403
        assert api.delete(f"/v1/persons/{person}/images/{view['id']}", headers=AUTH).status_code == 200

        theirs = log(person_id=person)
        assert theirs["total"] == 6 and theirs["next_offset"] is None
        assert [(e["action"], e["key_id"], e["key_name"]) for e in theirs["entries"]] == [
            ("delete_image", None, "service key"),
            ("view", made["enroll"][0], "access-log enroll"),
            ("view", None, "service key"),  # the person's record read, to find the view
            ("rename", None, "service key"),
            ("identify", made["identify"][0], "access-log identify"),
            ("enroll", made["enroll"][0], "access-log enroll"),
        ]
        assert theirs["entries"][5]["detail"] == "2 image(s), 2 embedding(s)"
        assert theirs["entries"][1]["detail"] == f"image {view['id']}"
        assert theirs["entries"][2]["detail"] == "person record"
        assert {e["name"] for e in theirs["entries"]} == {"Logged Thaksin S"}  # joined when read: renamed
        assert theirs["entries"][0]["detail"] == f"image {view['id']}: 1 images, 0 views, 1 embeddings, 1 files"
        assert all("Thaksin" not in e["detail"] for e in theirs["entries"])
        first = log(person_id=person, limit=1, offset=1)
        assert first["entries"] == theirs["entries"][1:2] and first["next_offset"] == 2
        assert log(key_name="access-log enroll", action="enroll")["total"] == 1  # the refused one is not there
    finally:
        assert api.delete(f"/v1/persons/{person}", headers=AUTH).status_code == 200
    assert log(person_id=person)["total"] == 0  # erased: no entry names them any more
    newest = log(limit=1)["entries"][0]
    assert (newest["action"], newest["person_id"], newest["key_name"]) == ("delete_person", None, "service key")
    assert newest["detail"] == "1 images, 1 embeddings, 1 files"
    ours = log(key_name="access-log identify")["entries"]
    assert [(e["action"], e["person_id"]) for e in ours] == [("identify", None)]  # the search stays, not the id

    assert api.get("/v1/access-log", headers=enroller).status_code == 403
    bad = api.get("/v1/access-log", headers=AUTH, params={"action": "peek"})
    assert bad.status_code == 422 and "action" in bad.json()["error"]["message"]
    assert KEY not in str(log(limit=1000))  # keys are never logged, by name only
    newest = log(limit=1)["entries"][0]["at"]
    assert log(since=newest, limit=1000)["entries"][-1]["at"] >= newest
    assert all(e["at"] < newest for e in log(until=newest, limit=1000)["entries"])
    for window in ({"since": "yesterday"}, {"since": "2026-11-28", "until": "2026-11-27"}):
        bad = api.get("/v1/access-log", headers=AUTH, params=window)
        assert bad.status_code == 422 and ("since" in bad.json()["error"]["message"]), bad.text


def test_the_cli_reads_the_log(tmp_path: Path):
    import json

    from test_cli import cli

    from core.store.access_log import Caller, log_access

    store = _store(tmp_path)
    ada = _person(store, "Ada")
    log_access(store, Caller(None, "service key", "admin"), "enroll", [ada], "1 image(s), 1 embedding(s)")
    log_access(store, Caller(4, "front desk", "identify"), "identify", [ada], "1 face(s), 1 identified")
    shown = cli(store.data_dir, "access-log")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.strip().splitlines()
    assert "identify" in lines[0] and "front desk (key 4)" in lines[0] and f"person {ada} (Ada)" in lines[0]
    assert "enroll" in lines[1] and "service key" in lines[1] and lines[2] == "2 of 2 entries"
    as_json = json.loads(cli(store.data_dir, "--json", "access-log", "--key", "front desk").stdout)
    assert as_json["total"] == 1 and as_json["entries"][0]["key_id"] == 4
    bad = cli(store.data_dir, "access-log", "--action", "peek")
    assert bad.returncode != 0 and "unknown action 'peek'" in bad.stderr
    assert json.loads(cli(store.data_dir, "--json", "access-log", "--since", "2000-01-01").stdout)["total"] == 2
    assert json.loads(cli(store.data_dir, "--json", "access-log", "--until", "2000-01-01").stdout)["total"] == 0
    for window in (["--since", "last week"], ["--since", "2026-11-28", "--until", "2026-11-27"]):
        refused = cli(store.data_dir, "access-log", *window)
        assert refused.returncode == 3 and "--since" in refused.stderr, refused.stderr


def test_commands_are_logged_by_the_account_that_ran_them(tmp_path: Path):
    """``manyangles`` needs no key: its entries name the operating-system account, and a command
    that failed writes none."""
    import getpass
    import json

    from test_cli import cli

    data = tmp_path / "data"
    runner = f"command line ({getpass.getuser()})"
    enrolled = cli(data, "--json", "enroll", "Martin Scorsese", photo("Martin_Scorsese", 1), "--largest")
    assert enrolled.returncode == 0, enrolled.stderr
    person = json.loads(enrolled.stdout)["person_id"]
    found = cli(data, "--json", "identify", photo("Martin_Scorsese", 2))
    assert found.returncode == 0 and json.loads(found.stdout)["faces"][0]["label"] == "Martin Scorsese"
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_bytes(b"not an image")
    assert cli(data, "identify", not_a_photo).returncode == 3  # refused: no entry
    for _ in range(2):  # a person's record shown twice in the window: one entry
        assert cli(data, "images", "Martin Scorsese").returncode == 0
    created = cli(data, "--json", "keys", "create", "--scope", "identify", "--name", "door camera")
    key = json.loads(created.stdout)
    assert cli(data, "keys", "revoke", str(key["id"])).returncode == 0

    def entries() -> list[dict]:
        shown = cli(data, "--json", "access-log", "--key", runner)
        assert shown.returncode == 0, shown.stderr
        return [(e["action"], e["person_id"], e["detail"]) for e in json.loads(shown.stdout)["entries"]]

    assert entries() == [
        ("key_revoke", None, f"key {key['id']}, scope identify"),
        ("key_create", None, f"key {key['id']}, scope identify"),
        ("view", person, "person record"),
        ("identify", person, "1 face(s), 1 identified"),
        ("enroll", person, "1 image(s), 1 embedding(s)"),
    ]
    assert key["key"] not in cli(data, "access-log").stdout  # the key itself is never logged
    assert cli(data, "backup", tmp_path / "backup").returncode == 0
    assert cli(data, "export", "--no-images", tmp_path / "export").returncode == 0
    assert [e[0] for e in entries()[:2]] == ["export_gallery", "backup"]
    restored = tmp_path / "restored"
    copied = json.loads(cli(restored, "--json", "restore", tmp_path / "backup").stdout)
    shown = json.loads(cli(restored, "--json", "access-log").stdout)["entries"]
    assert [e["action"] for e in shown] == ["restore", "key_revoke", "key_create", "view", "identify", "enroll"]
    assert shown[0]["key_name"] == runner and shown[0]["detail"] == f"1 person(s), {copied['files']} file(s)"
    deleted = cli(data, "delete", "Martin Scorsese")
    assert deleted.returncode == 0, deleted.stderr
    after = entries()
    assert after[0] == ("delete_person", None, "1 images, 1 embeddings, 1 files")
    assert [e[1] for e in after] == [None] * 8  # erased: their id went from every entry


def test_the_system_page_shows_the_access_log(console_env: httpx.Client):
    from test_console import page

    enrolled = console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Logged Oscar"},
        files={"photo": ("p.jpg", photo_bytes("Oscar_De_La_Hoya", 1), "image/jpeg")},
    )
    assert enrolled.status_code == 201, enrolled.text
    person = enrolled.json()["person_id"]
    try:
        at = page("system")
        assert not at.exception, at.exception
        table = next(d.value for d in at.dataframe if "action" in d.value.columns and "detail" in d.value.columns)
        assert (table["action"][0], table["by"][0]) == ("enroll", "service key")
        assert table["person"][0] == f"Logged Oscar ({person})"
        choice = next(s for s in at.selectbox if s.label == "Action")
        assert "identify" in choice.options and "delete_person" in choice.options
        choice.set_value("rename").run()
        assert not at.exception, at.exception
        shown = [d.value for d in at.dataframe if "action" in d.value.columns and "detail" in d.value.columns]
        assert not shown or set(shown[0]["action"]) == {"rename"}  # another test may have renamed someone
        assert shown or "No rename logged." in [c.value for c in at.caption]
        choice.set_value("every action").run()
        long_ago = datetime.now(UTC).date() - timedelta(days=400)  # the widget's range: ten years back
        at.date_input(key="access-since").set_value(long_ago).run()
        at.date_input(key="access-until").set_value(long_ago).run()  # nothing logged that day
        assert not at.exception, at.exception
        assert "No entry logged in those dates." in [c.value for c in at.caption]
        at.date_input(key="access-until").set_value(datetime.now(UTC).date()).run()  # today is included
        table = next(d.value for d in at.dataframe if "action" in d.value.columns and "detail" in d.value.columns)
        assert table["person"][0] == f"Logged Oscar ({person})"
    finally:
        console_env.delete(f"/v1/persons/{person}", headers=AUTH)


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
