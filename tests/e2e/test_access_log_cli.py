"""The access log as the command line writes it: each command by the account that ran it (the CLI in processes of its own)."""

from __future__ import annotations

from pathlib import Path

from conftest import cli, photo


def test_commands_are_logged_by_the_account_that_ran_them(tmp_path: Path):
    """``manyangles`` needs no key: its entries name the operating-system account, and a command
    that failed writes none."""
    import getpass
    import json

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
