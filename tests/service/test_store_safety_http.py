"""The gallery's safety over HTTP: concurrent deletes, hostile names."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from conftest import AUTH, FORCE, photo_bytes


def test_concurrent_http_deletes_one_200_the_rest_404(api: httpx.Client):
    enrolled = api.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Deleted Concurrently", **FORCE},
        files={"photo": ("p.jpg", photo_bytes("George_Clooney", 2), "image/jpeg")},
    ).json()
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def delete() -> None:
        with httpx.Client(base_url=api.base_url, timeout=60) as client:
            barrier.wait()
            statuses.append(client.delete(f"/v1/persons/{enrolled['person_id']}", headers=AUTH).status_code)

    threads = [threading.Thread(target=delete) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [404] * 5


@pytest.mark.parametrize(
    "name, stored",
    [
        ("../../etc/passwd", True),
        ("Zoë 😀 Ünïcode", True),
        ("a\x00b", False),  # NUL: a control character
        ("x" * 10_000, False),  # over the 200-character limit
        ("\u202eevil\u202c", False),  # bidi override marks: format characters
    ],
)
def test_hostile_names_are_stored_verbatim_or_refused(api: httpx.Client, name: str, stored: bool):
    response = api.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": name, **FORCE},
        files={"photo": ("p.jpg", photo_bytes("Cate_Blanchett", 1), "image/jpeg")},
    )
    if not stored:
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_name", response.text
        return
    assert response.status_code == 201, response.text
    person = api.get(f"/v1/persons/{response.json()['person_id']}", headers=AUTH).json()
    assert person["name"] == name
    data_dir: Path = api.data_dir  # type: ignore[attr-defined]
    paths = [p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*")]
    assert not any("passwd" in p or "Zo" in p for p in paths)  # a name never becomes a path
    assert api.delete(f"/v1/persons/{person['id']}", headers=AUTH).status_code == 200
