"""The console's person page (photo groups, add a photo, merge) and its sign-in, driven by
AppTest against the session's real Serve application."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from conftest import AUTH, FORCE, KEY, REPO, off_process, photo_bytes
from console_pages import page


def _enroll(api: httpx.Client, name: str, identity: str, n: int = 1, views: str = "") -> dict:
    data = {"name": name, **FORCE} | ({"views": views} if views else {"use_augmentation": "false"})
    answer = api.post(
        "/v1/persons", headers=AUTH, data=data, files={"photo": ("p.jpg", photo_bytes(identity, n), "image/jpeg")}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def _rows(api: httpx.Client, person_id: int) -> dict[str, int]:
    script = """
import json, sqlite3, sys
args = json.loads(sys.argv[1])
db = sqlite3.connect(f"file:{args['db']}?mode=ro", uri=True)
out = {t: db.execute(f"SELECT count(*) FROM {t} WHERE person_id = ?", (args["person"],)).fetchone()[0]
       for t in ("images", "embeddings")}
print(json.dumps(out))
"""
    return off_process(script, db=api.data_dir / "gallery.db", person=person_id)  # type: ignore[attr-defined]


def _button(at: AppTest, starts: str):
    return next(b for b in at.button if b.label.startswith(starts))


def test_a_photo_group_goes_behind_a_confirmation_and_a_view_alone(console_env: httpx.Client):
    first = _enroll(console_env, "Groups Person", "Kit_Harington", 1, "left,right")
    person = first["person_id"]
    added = console_env.post(
        f"/v1/persons/{person}/photos",
        headers=AUTH,
        data={"views": "up,smiling", **FORCE},
        files={"photo": ("p.jpg", photo_bytes("Kit_Harington", 2), "image/jpeg")},
    )
    assert added.status_code == 201, added.text
    before = _rows(console_env, person)
    at = page("person", {"id": str(person)})
    assert not at.exception, at.exception
    assert [m.value.split(" · ")[0] for m in at.markdown if m.value.startswith("**Photo")] == [
        "**Photo 1**",
        "**Photo 2**",
    ]
    views_of_second = len(added.json()["views"]) and sum(v["accepted"] for v in added.json()["views"])
    _button(at, "Remove photo 2").click().run()
    assert at.warning and "cannot be undone" in at.warning[0].value
    assert _rows(console_env, person) == before  # asking changes nothing
    _button(at, "Yes, remove them").click().run()
    assert not at.exception, at.exception
    assert at.success and f"Removed photo 2 and {views_of_second} view(s)" in at.success[0].value
    after = _rows(console_env, person)
    assert after == {
        "images": before["images"] - 1 - views_of_second,
        "embeddings": before["embeddings"] - 1 - views_of_second,
    }
    assert not [b for b in at.button if b.label.startswith("Remove photo 1")]  # the only photo left stays
    _button(at, "Remove view").click().run()  # one view alone
    assert _rows(console_env, person)["images"] == after["images"] - 1
    assert console_env.delete(f"/v1/persons/{person}", headers=AUTH).status_code == 200


def test_another_persons_face_is_added_only_when_the_admin_says_so(console_env: httpx.Client):
    person = _enroll(console_env, "Add Check Person", "Lance_Bass")["person_id"]
    at = page("person", {"id": str(person)})
    at.file_uploader[0].set_value(("p.jpg", photo_bytes("Gene_Robinson"), "image/jpeg"))
    _button(at, "Add photo").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.warning and "does not look like Add Check Person" in at.warning[0].value
    assert _rows(console_env, person)["images"] == 1
    _button(at, "Add it to Add Check Person anyway").click().run()
    assert not at.exception, at.exception
    assert at.success and "Added a photo" in at.success[0].value
    assert _rows(console_env, person)["images"] == 2
    assert console_env.delete(f"/v1/persons/{person}", headers=AUTH).status_code == 200


def test_merge_from_the_duplicates_link(console_env: httpx.Client):
    kept = _enroll(console_env, "Merge Kept", "Lindsay_Davenport", 1)["person_id"]
    twin = _enroll(console_env, "Merge Twin", "Lindsay_Davenport", 2)["person_id"]
    system = page("system")  # the duplicates finder: its answer and Merge buttons stay through reruns
    next(b for b in system.button if b.label == "Search the gallery for faces enrolled twice").click().run()
    system.run()
    assert not system.exception, system.exception
    merge = f"Merge Merge Twin ({twin}) into Merge Kept ({kept})…"
    assert [b.label for b in system.button if b.label == merge] == [merge]
    at = page("person", {"id": str(kept), "merge": str(twin)})  # that button opens this
    assert not at.exception, at.exception
    assert at.selectbox(key="merge-other").value == twin  # the pair's other person, whoever sorts first
    _button(at, "Merge Merge Twin").click().run()
    assert at.warning and "cannot be undone" in at.warning[0].value  # asked first
    assert console_env.get(f"/v1/persons/{twin}", headers=AUTH).status_code == 200
    _button(at, "Yes, merge them").click().run()
    assert not at.exception, at.exception
    assert at.success and f"Merged person {twin} into Merge Kept" in at.success[0].value
    assert console_env.get(f"/v1/persons/{twin}", headers=AUTH).status_code == 404
    assert _rows(console_env, kept)["images"] == 2
    assert console_env.delete(f"/v1/persons/{kept}", headers=AUTH).status_code == 200


# --- sign-in ----------------------------------------------------------------------------------


@pytest.fixture()
def listening_on(request: pytest.FixtureRequest) -> Iterator[None]:
    address = request.param
    before = streamlit_config.get_option("server.address")
    streamlit_config.set_option("server.address", address)
    yield
    streamlit_config.set_option("server.address", before)


def _app() -> AppTest:
    return AppTest.from_file(str(REPO / "console" / "app.py"), default_timeout=240)


def _sign_in(at: AppTest, key: str) -> None:
    """Type the key and submit the form in one run (a form's fields are sent with its button)."""
    at.text_input[0].input(key)
    at.button[0].click()
    at.run()


def _identify_key(api: httpx.Client) -> str:
    made = api.post("/v1/keys", headers=AUTH, data={"name": "lobby tablet", "scope": "identify"})
    assert made.status_code == 201, made.text
    return str(made.json()["secret"])


@pytest.mark.parametrize("listening_on", ["0.0.0.0"], indirect=True)
def test_a_console_on_the_network_shows_nothing_before_sign_in(console_env: httpx.Client, listening_on: None):
    at = _app().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Sign in"]  # the local admin's key is not used: it asks
    for other in ("enroll", "gallery", "identify", "latency", "system", "person"):  # no page is there to open
        with pytest.raises(ValueError, match=r"Known pages: \['Sign in'\]"):
            at.switch_page(str(REPO / "console" / "app_pages" / f"{other}.py"))
    assert not [b for b in at.button if b.label == "Sign in as the local admin"]  # not on the network
    assert not at.text_input[0].value and at.text_input[0].proto.type == 1  # a password field
    _sign_in(at, "ma_not_a_key")
    assert at.error and "Not signed in" in at.error[0].value and [t.value for t in at.title] == ["Sign in"]
    _sign_in(at, KEY)
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Enroll a person"], [e.value for e in at.error]
    assert any("Signed in as" in c.value and "admin key" in c.value for c in at.sidebar.caption)
    next(b for b in at.sidebar.button if b.label == "Sign out").click().run()
    assert [t.value for t in at.title] == ["Sign in"]


@pytest.mark.parametrize("listening_on", ["0.0.0.0"], indirect=True)
def test_an_identify_key_sees_only_identify(console_env: httpx.Client, listening_on: None):
    at = _app().run()
    _sign_in(at, _identify_key(console_env))
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Identify and verify"]
    assert any("identify key" in c.value for c in at.sidebar.caption)
    for other in ("gallery", "enroll", "system", "latency", "person"):  # not registered: no way to open them
        with pytest.raises(ValueError, match=r"Known pages: \['[^']*/app_pages/identify\.py'\]"):
            at.switch_page(str(REPO / "console" / "app_pages" / f"{other}.py"))


@pytest.mark.parametrize("listening_on", ["127.0.0.1"], indirect=True)
def test_on_loopback_the_local_admin_is_signed_in_until_they_sign_out(console_env: httpx.Client, listening_on: None):
    at = _app().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Enroll a person"]
    next(b for b in at.sidebar.button if b.label == "Sign out").click().run()
    assert [t.value for t in at.title] == ["Sign in"]  # and stays out
    at.run()
    assert [t.value for t in at.title] == ["Sign in"]
    next(b for b in at.button if b.label == "Sign in as the local admin").click().run()  # this machine's key
    assert [t.value for t in at.title] == ["Enroll a person"]


def test_every_page_opens_with_a_banner_when_the_api_is_down(
    console_env: httpx.Client, monkeypatch: pytest.MonkeyPatch
):
    from console.config import SIGNED_IN, SignedIn

    from conftest import free_port

    monkeypatch.setenv("MANYANGLES_API_URL", f"http://127.0.0.1:{free_port()}")
    at = _app()
    at.session_state[SIGNED_IN] = SignedIn(KEY, "service key", "admin", frozenset({"admin", "enroll", "read"}))
    at.run()
    assert not at.exception, at.exception
    assert at.error and "not reachable" in at.error[0].value and "try again once it is back" in at.error[0].value
    signed_out = _app().run()  # the sign-in page says so too
    assert [t.value for t in signed_out.title] == ["Sign in"]
    assert signed_out.error and "not reachable" in signed_out.error[0].value
