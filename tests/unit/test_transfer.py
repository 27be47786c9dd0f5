"""Export and import of a whole gallery (core/store/transfer.py): Parquet through DuckDB, the image
files, the conflict rules, and identical identify answers after a round trip."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from core.enroll.import_check import ImportFaceCheck
from core.errors import InvalidInput
from core.settings import Settings
from core.store.records import StoredThreshold
from core.store.transfer import export_gallery, import_gallery

from conftest import cli, local_service, photo_bytes, tree_digest

PEOPLE = ["Barack_Obama", "Angelina_Jolie", "George_Clooney"]
PROBES = [("Barack_Obama", 2), ("Angelina_Jolie", 3), ("George_Clooney", 2), ("Matt_Damon", 1)]


def answers(service) -> list[tuple]:
    out = []
    for who, n in PROBES:
        result = service.identify(photo_bytes(who, n))
        for face in result.faces:
            out.append((result.threshold, [(c.name, round(c.score, 6)) for c in face.match.candidates]))
    return out


@pytest.fixture()
def gallery(tmp_path: Path, default_models):
    service = local_service(Settings(data_dir=tmp_path / "source"), default_models)
    service.enroll("Barack Obama", photo_bytes("Barack_Obama"), augment=True, views=["left", "smiling"])
    for who in PEOPLE[1:]:
        service.enroll(who.replace("_", " "), photo_bytes(who))
    service.store.set_threshold(
        StoredThreshold("arcface-mbf-w600k", "fpir", "blend", 0.01, 0.3, 250, "test", "t", 2e-4, 40)
    )
    return service


def test_export_then_import_into_an_empty_data_dir_answers_the_same(gallery, tmp_path: Path, default_models):
    exported = export_gallery(gallery.store, tmp_path / "export")
    assert (exported.persons, exported.embeddings) == (
        3,
        len(gallery.store.load_gallery(gallery.model.name).person_ids),
    )
    files = {p.name for p in (tmp_path / "export").iterdir()}
    assert {"persons.parquet", "images.parquet", "embeddings.parquet", "thresholds.parquet", "manifest.json"} <= files
    # the tables are plain Parquet for analytics: the vectors are FLOAT lists DuckDB computes on
    dims = duckdb.sql(f"SELECT DISTINCT len(vector) FROM read_parquet('{tmp_path / 'export' / 'embeddings.parquet'}')")
    assert dims.fetchall() == [(512,)]
    assert oct((tmp_path / "export" / "manifest.json").stat().st_mode & 0o777) == "0o600"

    target = local_service(Settings(data_dir=tmp_path / "target"), default_models)
    imported = import_gallery(target.store, tmp_path / "export")
    assert (imported.persons, imported.images, imported.embeddings) == (3, exported.images, exported.embeddings)
    assert answers(target) == answers(gallery)  # same names, same scores, same threshold
    assert target.store.thresholds() == gallery.store.thresholds()  # with what they hold at a gallery's size
    assert {p.name for p in target.store.list_persons()} == {p.name for p in gallery.store.list_persons()}
    obama = target.store.find_person("Barack Obama")
    images = target.store.person_detail(obama.id).images
    sources = {i.source for i in images}
    assert "original" in sources and len(sources) > 1  # the accepted views came along
    photo = next(i.id for i in images if i.source == "original")
    assert all(i.source_image_id == photo for i in images if i.source != "original")  # still their photo's


def test_conflicts_skip_rename_merge(gallery, tmp_path: Path, default_models):
    export_gallery(gallery.store, tmp_path / "export")
    before = tree_digest(gallery.store.data_dir)
    skipped = import_gallery(gallery.store, tmp_path / "export")  # default: skip
    assert skipped.persons == 0 and len(skipped.skipped) == 3
    assert tree_digest(gallery.store.data_dir) == before

    renamed = import_gallery(gallery.store, tmp_path / "export", "rename")
    assert renamed.renamed == {"Barack Obama": "Barack Obama (2)", "Angelina Jolie": "Angelina Jolie (2)",
                               "George Clooney": "George Clooney (2)"}  # fmt: skip
    assert len(gallery.store.list_persons()) == 6

    # merge: another gallery's "Angelina Jolie" from another photo joins ours; a copy of what we
    # already have adds nothing
    other = local_service(Settings(data_dir=tmp_path / "other"), default_models)
    other.enroll("Angelina Jolie", photo_bytes("Angelina_Jolie", 2))
    export_gallery(other.store, tmp_path / "other-export")
    jolie = gallery.store.find_person("Angelina Jolie")
    merged = import_gallery(gallery.store, tmp_path / "other-export", "merge")
    assert merged.merged == ["Angelina Jolie"] and (merged.persons, merged.images, merged.embeddings) == (0, 1, 1)
    after = gallery.store.find_person("Angelina Jolie")
    assert (after.id, after.num_images, after.num_embeddings) == (jolie.id, 2, 2)
    again = import_gallery(gallery.store, tmp_path / "other-export", "merge")
    assert gallery.store.find_person("Angelina Jolie").num_embeddings == 2, again
    assert (again.merged, again.images, again.embeddings) == (["Angelina Jolie"], 0, 0)  # it says what it stored


def test_the_face_check_leaves_out_a_face_already_in_the_gallery(gallery, tmp_path: Path, default_models):
    """What enrollment refuses, import refuses too: a known face under a new name; and a merge
    only joins a person its face is identified as (a namesake is not them). Persons of one
    export are not checked against each other (twins their gallery enrolled with force stay two)."""
    other = local_service(Settings(data_dir=tmp_path / "other"), default_models)
    other.enroll("Barry", photo_bytes("Barack_Obama", 2))  # another photo of our Barack Obama
    other.enroll("Angelina Jolie", photo_bytes("George_Clooney", 2))  # a namesake with George Clooney's face
    other.enroll("George Clooney", photo_bytes("Matt_Damon", 3))  # a namesake with a face we do not have
    other.enroll("Barack Obama", photo_bytes("Barack_Obama", 3), force=True)  # him: joins him
    other.enroll("Matt Damon", photo_bytes("Matt_Damon", 1), force=True)  # as George Clooney's namesake
    other.enroll("Matt Twin", photo_bytes("Matt_Damon", 2), force=True)
    export_gallery(other.store, tmp_path / "export")
    check = ImportFaceCheck.of(gallery)
    assert check is not None and check.threshold == 0.3 and check.rule == gallery.rule() == "blend"
    before = {p.name: (p.num_images, p.num_embeddings) for p in gallery.store.list_persons()}

    report = import_gallery(gallery.store, tmp_path / "export", "merge", check)
    found = {f.person: (f.reason, f.match, f.into) for f in report.face_conflicts}
    assert found == {
        "Barry": ("already_enrolled", "Barack Obama", None),
        "Angelina Jolie": ("another_person", "George Clooney", "Angelina Jolie"),
        "George Clooney": ("not_identified", None, "George Clooney"),
    }
    assert all(f.threshold == 0.3 for f in report.face_conflicts)
    assert all((f.score or 0) >= 0.3 for f in report.face_conflicts if f.match is not None)
    assert (report.persons, report.merged, report.unchecked) == (2, ["Barack Obama"], [])
    assert "arcface-mbf-w600k, blend >= 0.3000" in report.face_check
    after = {p.name: (p.num_images, p.num_embeddings) for p in gallery.store.list_persons()}
    assert after["Barack Obama"][0] == before["Barack Obama"][0] + 1  # the merge that is him
    assert {k: after[k] for k in before if k != "Barack Obama"} == {
        k: v for k, v in before.items() if k != "Barack Obama"
    }
    assert set(after) - set(before) == {"Matt Damon", "Matt Twin"}

    forced = import_gallery(gallery.store, tmp_path / "export", "merge", check, force=True)
    assert {f.person for f in forced.face_conflicts} == {"Barry", "Angelina Jolie", "George Clooney"}
    assert forced.persons == 1 and {"Angelina Jolie", "George Clooney"} <= set(forced.merged)  # Barry is new
    assert gallery.store.find_person("Angelina Jolie").num_images == before["Angelina Jolie"][0] + 1

    # a check of another model has nothing to search by: everyone is imported and named unchecked
    blind = ImportFaceCheck(gallery.store, "other-model", "top2", 0.93, 0.0)
    fresh = local_service(Settings(data_dir=tmp_path / "fresh"), default_models)
    unchecked = import_gallery(fresh.store, tmp_path / "export", "skip", blind)
    assert unchecked.persons == 6 and sorted(unchecked.unchecked) == sorted(p.name for p in other.store.list_persons())


def test_a_damaged_or_image_less_export_changes_nothing(gallery, tmp_path: Path, default_models):
    target = local_service(Settings(data_dir=tmp_path / "target"), default_models)
    export_gallery(gallery.store, tmp_path / "tables", with_images=False)
    before = tree_digest(target.store.data_dir)
    with pytest.raises(InvalidInput, match="without images"):
        import_gallery(target.store, tmp_path / "tables")
    export_gallery(gallery.store, tmp_path / "export")
    victim = next((tmp_path / "export" / "images").rglob("*.png"))
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InvalidInput, match="SHA-256"):
        import_gallery(target.store, tmp_path / "export")
    with pytest.raises(InvalidInput, match="not an empty folder"):
        export_gallery(gallery.store, tmp_path / "export")
    with pytest.raises(InvalidInput, match="conflict rule"):
        import_gallery(target.store, tmp_path / "tables", "overwrite")
    assert tree_digest(target.store.data_dir) == before


def test_export_and_import_commands(gallery, tmp_path: Path):
    done = cli(gallery.store.data_dir, "export", str(tmp_path / "export"))
    assert done.returncode == 0 and "export: 3 person(s)" in done.stdout, done.stderr
    done = cli(tmp_path / "target", "import", str(tmp_path / "export"))
    assert done.returncode == 0 and "import: 3 person(s)" in done.stdout, done.stderr
    done = cli(tmp_path / "target", "--json", "import", str(tmp_path / "export"), "--on-conflict", "skip")
    assert done.returncode == 0 and '"skipped": ["Barack Obama"' in done.stdout, done.stdout
    # renamed copies of faces already there are left out, named, unless forced
    done = cli(tmp_path / "target", "import", str(tmp_path / "export"), "--on-conflict", "rename")
    assert done.returncode == 0 and "import: 0 person(s)" in done.stdout, (done.stdout, done.stderr)
    assert "left out: 'George Clooney' is identified as 'George Clooney'" in done.stdout and "--force" in done.stdout
    done = cli(tmp_path / "target", "--json", "import", str(tmp_path / "export"), "--on-conflict", "rename",
        "--force",
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert report["persons"] == 3 and {f["match"] for f in report["face_conflicts"]} == set(report["renamed"])
    done = cli(tmp_path / "other", "import", str(tmp_path / "export"), "--no-face-check")
    assert done.returncode == 0 and "import: 3 person(s)" in done.stdout and "no face check" in done.stdout
    done = cli(tmp_path / "target", "import", str(tmp_path / "nowhere"))
    assert done.returncode == 3 and "no manifest.json" in done.stderr, (done.stdout, done.stderr)
