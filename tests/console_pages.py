"""The console's pages under AppTest: open one as a signed-in admin (or a narrower key), enroll through it."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from conftest import KEY, REPO

PAGES = REPO / "console" / "app_pages"


ADMIN = frozenset({"admin", "enroll", "read", "identify"})


def page(name: str, query: dict[str, str] | None = None, key: str = KEY, grants: frozenset[str] = ADMIN) -> AppTest:
    """A console page as a signed-in admin (or ``key`` with ``grants``) opens it."""
    from console.config import SIGNED_IN, SignedIn

    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=240)
    at.session_state[SIGNED_IN] = SignedIn(key, "service key", "admin" if "admin" in grants else "x", grants)
    for field, value in (query or {}).items():
        at.query_params[field] = value
    return at.run()


def enroll(at: AppTest, name: str, data: bytes, views: list[str]) -> AppTest:
    at.text_input[0].input(name)
    at.file_uploader[0].set_value(("photo.jpg", data, "image/jpeg"))
    at.multiselect[0].set_value(views)
    return at.button[0].click().run()
