"""The console in a real browser: `streamlit run` + Debian's chromium driven by Playwright.

An admin's walk: enroll a person through the page, add a photo, find them in the Gallery's grid,
open them, remove a photo group, merge a face enrolled twice, look at every page, sign out.
Screenshots go to out/screenshots/ (``SCREENSHOTS_DIR=docs`` makes README.md's). Skipped (with the reason) where chromium or Playwright is absent; .ci/run
installs chromium, so CI always runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import httpx
import pytest

from conftest import AUTH, FORCE, KEY, MAX_UPLOAD, REPO, free_port, photo, photo_bytes

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(
    os.environ.get("SCREENSHOTS_DIR") or REPO / "out" / "screenshots"
)  # SCREENSHOTS_DIR=docs: README's pictures
WALK_PEOPLE = (
    "Angela_Bassett",
    "Hugh_Grant",
    "Zhang_Ziyi",
    "Muhammad_Ali",
    "Queen_Rania",
    "Keanu_Reeves",
    "Diana_Krall",
)

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or shutil.which("chromium") is None, reason="Debian's chromium is not installed"
)


@pytest.fixture()
def console_url(api: httpx.Client, tmp_path: Path):
    pytest.importorskip("playwright", reason="playwright is not installed")
    port = free_port()
    env = {
        **os.environ,
        "MANYANGLES_API_URL": str(api.base_url),
        "MANYANGLES_API_KEY": KEY,
        "MANYANGLES_DATA_DIR": str(api.data_dir),  # type: ignore[attr-defined]
    }
    from serve.run import console_command  # as `make run` starts it

    log = (tmp_path / "console.log").open("wb")
    process = subprocess.Popen(
        console_command(port, MAX_UPLOAD), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=20)


def wait_idle(page) -> None:
    """Streamlit's own e2e practice: the app is connected and its script has stopped running."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000, polling=250
    )


def shot(page, name: str, height: int = 1000) -> None:
    """A screenshot of the page as it stands, ``height`` pixels tall from its top (Streamlit
    scrolls inside its own element: the window is made that tall for it); docs/ holds the walk's,
    README.md shows them."""
    wait_idle(page)
    page.set_viewport_size({"width": 1300, "height": height})
    page.locator('[data-testid="stMain"]').evaluate("element => element.scrollTo(0, 0)")
    wait_idle(page)
    page.screenshot(path=str(SHOTS / f"{name}.jpg"), type="jpeg", quality=80)
    page.set_viewport_size({"width": 1300, "height": 1000})


def test_an_admin_walks_the_console_in_a_browser(console_url: str, api: httpx.Client):
    """Enroll (the page asks about a face already enrolled), add a second photo with views, find
    the person in the Gallery's grid, open them, remove the second photo's group, merge the face
    enrolled twice, look at every page, sign out."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    name = "Browser Clooney (www.clooney.example)"  # shown as typed: not a link, not Markdown
    shown = "Browser Clooney"  # what the page is searched for (a word joiner breaks the URL there)
    known = api.post(  # the face is enrolled already: the page asks before it enrolls it again
        "/v1/persons",
        headers=AUTH,
        data={"name": "Known Clooney", **FORCE},
        files={"photo": ("p.jpg", photo_bytes("George_Clooney", 1), "image/jpeg")},
    )
    assert known.status_code == 201, known.text
    known_id = known.json()["person_id"]
    person_id = None
    others = [  # a gallery with a few faces in it, for the grid
        api.post(
            "/v1/persons",
            headers=AUTH,
            data={"name": who.replace("_", " "), "use_augmentation": "false", **FORCE},
            files={"photo": ("p.jpg", photo_bytes(who, 1), "image/jpeg")},
        ).json()["person_id"]
        for who in WALK_PEOPLE
    ]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(console_url)  # on loopback: the local admin is signed in
            wait_idle(page)
            page.get_by_text("Signed in as").wait_for(timeout=60_000)
            page.get_by_label("Name").fill(name)
            page.get_by_text("3MB per file").wait_for(timeout=60_000)  # the service's cap, not Streamlit's 200MB
            assert page.get_by_role("button", name="Deploy").count() == 0  # an admin's toolbar, not a developer's
            page.get_by_text("classic warps: no generative model configured").wait_for(timeout=60_000)
            page.locator('input[type="file"]').first.set_input_files(str(photo("George_Clooney", 1)))
            wait_idle(page)
            page.get_by_role("button", name="Enroll").click()
            page.get_by_text("This face is already enrolled as").wait_for(timeout=180_000)
            shot(page, "enroll-known-face")
            page.get_by_role("button", name=re.compile(f"^Enroll {shown}.* as a new person$")).click()
            page.get_by_text(f"Enrolled {shown}").first.wait_for(timeout=180_000)
            wait_idle(page)
            assert page.get_by_role("link", name=re.compile("clooney", re.I)).count() == 0
            page.locator('[data-testid="stImage"]').nth(1).wait_for(timeout=60_000)  # images render last
            assert page.locator('[data-testid="stImage"]').count() >= 2  # original + every view
            assert page.get_by_text("augmented_", exact=False).count() == 0  # view names, not storage tags
            shot(page, "enroll")
            found = api.get("/v1/persons", headers=AUTH, params={"prefix": name}).json()["persons"]
            person_id = int(found[0]["id"])

            page.get_by_role("link", name="Gallery").click()
            page.get_by_label("Search by name").wait_for(timeout=60_000)
            wait_idle(page)
            search = page.get_by_label("Search by name")
            search.fill(shown)
            search.press("Enter")
            # the rerun may not have started when wait_idle looks: wait for the filtered page
            page.get_by_text("1 person(s) matching").wait_for(timeout=60_000)
            wait_idle(page)
            assert page.get_by_role("link", name=re.compile("clooney", re.I)).count() == 0
            search.fill("")
            search.press("Enter")
            page.get_by_text("1 person(s) matching").wait_for(state="detached", timeout=60_000)
            shot(page, "gallery")
            search.fill(shown)
            search.press("Enter")
            page.get_by_text("1 person(s) matching").wait_for(timeout=60_000)
            wait_idle(page)
            page.get_by_role("button", name=re.compile(f"^{shown}")).click()  # the name under the face
            page.get_by_text("Photo 1").first.wait_for(timeout=60_000)
            wait_idle(page)
            page.get_by_text("Add a photo of this person").click()
            page.locator('input[type="file"]').first.set_input_files(str(photo("George_Clooney", 2)))
            wait_idle(page)
            page.get_by_text("Generate views of it too").click()
            page.get_by_role("button", name="Add photo").click()
            page.get_by_text("Added a photo").wait_for(timeout=180_000)
            page.get_by_text("Photo 2").first.wait_for(timeout=60_000)
            shot(page, "person", 1500)
            page.get_by_role("button", name=re.compile("^Remove photo 2 and its")).click()
            page.get_by_text("cannot be undone").wait_for(timeout=60_000)
            shot(page, "person-remove-photo", 2200)
            page.get_by_role("button", name="Yes, remove them").click()
            page.get_by_text("Removed photo 2").wait_for(timeout=60_000)
            wait_idle(page)
            assert page.get_by_role("button", name=re.compile("^Remove photo")).count() == 0  # one photo left
            assert page.get_by_text("The only photo").count() == 1

            page.get_by_text("Merge another person into this one").click()
            wait_idle(page)
            page.get_by_label("Find the other person").fill("Known Clooney")
            page.get_by_label("Find the other person").press("Enter")
            page.get_by_role("button", name=re.compile("^Merge Known Clooney into")).wait_for(timeout=60_000)
            wait_idle(page)
            shot(page, "person-merge", 2600)
            wait_idle(page)
            merge = page.get_by_role("button", name=re.compile("^Merge Known Clooney into"))
            merge.scroll_into_view_if_needed()
            merge.click()
            page.get_by_text("cannot be undone").wait_for(timeout=60_000)
            wait_idle(page)
            page.get_by_role("button", name="Yes, merge them").click()
            page.get_by_text(f"Merged person {known_id} into").wait_for(timeout=60_000)
            shot(page, "person-merged", 1400)

            page.get_by_role("link", name="Identify and verify").click()
            page.get_by_text("Probe photo").wait_for(timeout=60_000)  # the page, not the last one's uploader
            wait_idle(page)
            page.locator('input[type="file"]').first.set_input_files(str(photo("George_Clooney", 3)))
            wait_idle(page)
            page.get_by_role("button", name="Identify").click()
            # answered: the face named (other tests' Clooneys may rank first in a shared gallery)
            page.get_by_text(re.compile(r"^Face 1: ")).first.wait_for(timeout=120_000)
            shot(page, "identify")
            for link, file, drawn in (("System", "system", "Identification:"), ("Latency", "latency", "End to end")):
                page.get_by_role("link", name=link).click()
                page.get_by_text(drawn).first.wait_for(timeout=60_000)  # this page, drawn
                shot(page, file, 1600)
            page.get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="Sign in", exact=True).wait_for(timeout=60_000)
            assert page.get_by_role("link", name="Gallery").count() == 0
            shot(page, "sign-in")
            browser.close()
        assert api.get(f"/v1/persons/{known_id}", headers=AUTH).status_code == 404  # merged
        detail = api.get(f"/v1/persons/{person_id}", headers=AUTH).json()
        # the second photo went with its views; Known Clooney's photo was this very photo: kept once
        assert [i["display_name"] for i in detail["images"] if i["source"] == "original"] == ["original.jpg"]
        assert all(i["source_image_id"] == detail["images"][0]["id"] for i in detail["images"][1:])
    finally:
        for person in (known_id, person_id, *others):
            if person is not None:
                api.delete(f"/v1/persons/{person}", headers=AUTH)
