"""The access log over HTTP: keys' actions and the persons they touched, and the System page's log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from conftest import AUTH, KEY, off_process, photo_bytes


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


def test_the_system_page_shows_the_access_log(console_env: httpx.Client):
    from console_pages import page

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
