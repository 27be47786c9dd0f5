"""The console in a real browser: `streamlit run` + Debian's chromium driven by Playwright.

Enroll a person through the page, see the grid, find them in the gallery, delete them. Screenshots
go to out/screenshots/. Skipped (with the reason) where chromium or Playwright is absent; .ci/run
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
SHOTS = REPO / "out" / "screenshots"

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


def test_enroll_find_and_delete_in_a_browser(console_url: str, api: httpx.Client):
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
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(console_url)
            wait_idle(page)
            page.get_by_label("Name").fill(name)
            page.get_by_text("3MB per file").wait_for(timeout=60_000)  # the service's cap, not Streamlit's 200MB
            assert page.get_by_role("button", name="Deploy").count() == 0  # an admin's toolbar, not a developer's
            page.locator('input[type="file"]').first.set_input_files(str(photo("George_Clooney", 1)))
            wait_idle(page)
            page.get_by_role("button", name="Enroll").click()
            page.get_by_text("This face is already enrolled as").wait_for(timeout=180_000)
            wait_idle(page)
            page.screenshot(path=str(SHOTS / "enroll-known-face.png"))
            page.get_by_role("button", name=re.compile(f"^Enroll {shown}.* as a new person$")).click()
            page.get_by_text(f"Enrolled {shown}").first.wait_for(timeout=180_000)
            wait_idle(page)
            assert page.get_by_role("link", name=re.compile("clooney", re.I)).count() == 0
            assert page.get_by_text("the uploaded photo").count() == 1
            page.locator('[data-testid="stImage"]').nth(1).wait_for(timeout=60_000)  # images render last
            assert page.locator('[data-testid="stImage"]').count() >= 2  # original + every view
            page.screenshot(path=str(SHOTS / "enroll.png"))

            page.get_by_role("link", name="Gallery").click()
            wait_idle(page)
            search = page.get_by_label("Search by name")
            search.fill(shown)
            search.press("Enter")
            # the rerun may not have started when wait_idle looks (the session's gallery holds other
            # tests' persons, so the unfiltered page says "N person(s)"): wait for the filtered page
            page.get_by_text("1 person(s)").wait_for(timeout=60_000)
            wait_idle(page)
            assert page.get_by_text("1 person(s)").count() == 1
            assert page.get_by_role("link", name=re.compile("clooney", re.I)).count() == 0
            page.screenshot(path=str(SHOTS / "gallery.png"))
            page.get_by_text(f"I want to delete {shown}").click()
            wait_idle(page)
            page.get_by_role("button", name="Delete").click()
            page.get_by_text("Deleted:").wait_for(timeout=60_000)
            browser.close()
        persons = api.get("/v1/persons", headers=AUTH, params={"prefix": name}).json()["persons"]
        assert name not in [p["name"] for p in persons]
    finally:
        api.delete(f"/v1/persons/{known.json()['person_id']}", headers=AUTH)
