"""The CLI, run as users run it (`python -m core ...`), on real photos and a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.augment.classic import CLASSIC_VIEWS

from conftest import FACES, bomb_png, cli, no_face_jpeg, photo, side_by_side, tree_digest


@pytest.fixture(scope="module")
def enrolled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("cli") / "data"
    for identity in ("Barack_Obama", "Angelina_Jolie"):
        done = cli(data, "enroll", identity.replace("_", " "), photo(identity))
        assert done.returncode == 0, done.stderr
        assert "enrolled" in done.stdout
    return data


def test_identify_verify_persons(enrolled_store: Path):
    found = cli(enrolled_store, "--json", "identify", photo("Barack_Obama", 2))
    assert found.returncode == 0, found.stderr
    faces = json.loads(found.stdout)["faces"]  # the HTTP API's IdentifyResponse
    assert len(faces) == 1 and faces[0]["label"] == "Barack Obama" and faces[0]["identity"]["name"] == "Barack Obama"
    assert faces[0]["candidates"][0]["score"] > faces[0]["candidates"][1]["score"]

    stranger = cli(enrolled_store, "--json", "identify", photo("George_Clooney", 1))
    assert stranger.returncode == 0 and json.loads(stranger.stdout)["faces"][0]["label"] == "unknown"

    same = cli(enrolled_store, "--json", "verify", photo("Angelina_Jolie", 2), photo("Angelina_Jolie", 3))
    assert same.returncode == 0 and json.loads(same.stdout)["same_person"] is True
    assert json.loads(same.stdout)["threshold"] == 0.2288  # two photos at FMR 0.1%: ArcFace's shipped photo-pair value
    other = cli(enrolled_store, "verify", photo("Angelina_Jolie", 2), photo("Barack_Obama", 3))
    assert other.returncode == 0 and "different persons" in other.stdout

    # a photo against an enrolled person (a claimed identity), scored as identify scored them
    claimed = cli(enrolled_store, "--json", "verify", photo("Barack_Obama", 2), "--person", "Barack Obama")
    assert claimed.returncode == 0, claimed.stderr
    verdict = json.loads(claimed.stdout)  # the HTTP API's PersonVerifyResponse
    assert verdict["same_person"] is True and verdict["name"] == "Barack Obama"
    assert verdict["score"] == pytest.approx(faces[0]["identity"]["score"], abs=1e-6)
    assert (verdict["threshold"], verdict["target_fmr"]) == (0.2309, 0.001)  # one to one: FMR 0.1% (blend, shipped)
    strict = cli(enrolled_store, "--verify-fmr", "0", "verify", photo("Barack_Obama", 2), "--person", "Barack Obama")
    assert strict.returncode == 0 and "threshold 0.2622 (the identification threshold, blend" in strict.stdout
    impostor = cli(enrolled_store, "verify", photo("Angelina_Jolie", 2), "--person", "Barack Obama")
    assert impostor.returncode == 0 and impostor.stdout.startswith("not 'Barack Obama' (person "), impostor.stdout
    both = cli(enrolled_store, "verify", photo("Barack_Obama", 2), photo("Barack_Obama", 3), "--person", "Barack Obama")
    assert both.returncode == 3 and "not both" in both.stderr
    nobody = cli(enrolled_store, "verify", photo("Barack_Obama", 2), "--person", "No Such Person")
    assert nobody.returncode == 4 and "No Such Person" in nobody.stderr

    persons = cli(enrolled_store, "persons")
    assert "Angelina Jolie" in persons.stdout and "Barack Obama" in persons.stdout
    some = cli(enrolled_store, "persons", "--prefix", "Bar")
    assert "Barack Obama" in some.stdout and "Angelina Jolie" not in some.stdout


def bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    files = {
        "not an image": (b"hello, this is a text file\n" * 20, "not_an_image"),
        "truncated jpeg": (photo("Barack_Obama").read_bytes()[:20000], "truncated_image"),
        "20000x20000 png": (bomb_png(), "image_too_large"),
        "0-byte file": (b"", "empty_image"),
        "no face": (no_face_jpeg(), "no_face"),
        "two faces": (side_by_side(photo("Matt_Damon"), photo("George_Clooney")), "multiple_faces"),
    }
    out = {}
    for i, (label, (data, code)) in enumerate(files.items()):
        path = tmp / f"bad{i}.jpg"
        path.write_bytes(data)
        out[label] = (path, code)
    return out


def test_bad_inputs_exit_non_zero_and_leave_the_store_unchanged(enrolled_store: Path, tmp_path: Path):
    before = tree_digest(enrolled_store)
    for label, (path, code) in bad_inputs(tmp_path).items():
        done = cli(enrolled_store, "enroll", "Someone New", path)
        assert done.returncode == 3, (label, done.returncode, done.stderr)
        assert code in done.stderr, (label, done.stderr)
        assert "Traceback" not in done.stderr
        assert tree_digest(enrolled_store) == before, label
    missing = cli(enrolled_store, "identify", tmp_path / "nope.jpg")
    assert missing.returncode == 3 and "no such file" in missing.stderr
    folder = cli(enrolled_store, "identify", tmp_path)
    assert folder.returncode == 3 and "not a file" in folder.stderr
    for top_k in ("0", "-3", "101"):  # the API's bounds, with a message rather than a traceback
        refused = cli(enrolled_store, "identify", photo("Barack_Obama", 2), "--top-k", top_k)
        assert refused.returncode == 3 and f"top_k must be between 1 and 100, got {top_k}" in refused.stderr
    for bad_id in ("x", str(2**63)):
        refused = cli(enrolled_store, "keys", "revoke", bad_id)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr and bad_id in refused.stderr
    for option in ("--workers", "--batch-size"):  # 0 once meant "the default", -1 reached Ray
        refused = cli(enrolled_store, "reembed", "--model", "dlib", option, "0")
        assert refused.returncode == 2 and f"{option}: 0 is too small: at least 1" in refused.stderr
    duplicate = cli(enrolled_store, "enroll", "Barack Obama", photo("Barack_Obama", 3))
    assert duplicate.returncode == 5 and "already enrolled" in duplicate.stderr
    assert tree_digest(enrolled_store) == before


def test_two_faces_with_largest_and_delete(tmp_path: Path):
    data = tmp_path / "data"
    group = tmp_path / "group.jpg"
    group.write_bytes(side_by_side(photo("Matt_Damon"), photo("George_Clooney")))
    done = cli(data, "--json", "enroll", "Matt", group, "--largest")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["num_embeddings"] == 1
    files = [p for p in (data / "images").rglob("*") if p.is_file()]
    assert len(files) == 1
    taken = cli(data, "enroll", "Cate", photo("Cate_Blanchett"))
    assert taken.returncode == 0, taken.stderr
    before = tree_digest(data)
    clash, blank = cli(data, "rename", "Matt", "Cate"), cli(data, "rename", "Matt", " ")
    assert clash.returncode != 0 and "already enrolled" in clash.stderr and "Traceback" not in clash.stderr
    assert blank.returncode != 0 and "Traceback" not in blank.stderr
    assert cli(data, "rename", "Nobody", "X").returncode == 4
    assert tree_digest(data) == before
    renamed = cli(data, "--json", "rename", "Matt", "Matt Damon")
    assert renamed.returncode == 0 and json.loads(renamed.stdout)["name"] == "Matt Damon"
    assert cli(data, "delete", "Cate").returncode == 0
    logged = cli(data, "access-log", "--action", "rename")
    assert logged.returncode == 0 and "rename" in logged.stdout and "Matt Damon" in logged.stdout
    gone = cli(data, "delete", "Matt Damon")
    assert gone.returncode == 0 and "1 file(s)" in gone.stdout
    assert not [p for p in (data / "images").rglob("*") if p.is_file()]
    again = cli(data, "delete", "Matt Damon")
    assert again.returncode == 4 and "person_not_found" in again.stderr


def test_add_a_photo_list_and_remove_images(tmp_path: Path):
    data = tmp_path / "data"
    assert cli(data, "enroll", "Cate", photo("Cate_Blanchett")).returncode == 0
    added = cli(data, "add-photo", "Cate", photo("Cate_Blanchett", 2), "--views", "left")
    assert added.returncode == 0, added.stderr
    assert "added a photo of 'Cate'" in added.stdout and "original, augmented_left" in added.stdout
    before = tree_digest(data)
    again = cli(data, "add-photo", "Cate", photo("Cate_Blanchett", 2))
    assert again.returncode == 5 and "photo_exists" in again.stderr
    assert cli(data, "add-photo", "Nobody", photo("Cate_Blanchett", 3)).returncode == 4
    assert tree_digest(data) == before
    listed = cli(data, "--json", "images", "Cate")
    assert listed.returncode == 0, listed.stderr
    images = json.loads(listed.stdout)["images"]
    assert [i["display_name"] for i in images] == ["original.jpg", "original_2.jpg", "augmented_left_1.png"]
    view, first, second = images[2]["id"], images[0]["id"], images[1]["id"]
    assert images[2]["source_image_id"] == second and images[1]["source_image_id"] is None
    removed = cli(data, "remove-image", "Cate", view)
    assert removed.returncode == 0 and "1 embedding(s), 1 file(s)" in removed.stdout
    assert cli(data, "remove-image", "Cate", first).returncode == 0
    last = cli(data, "remove-image", "Cate", second)
    assert last.returncode == 6 and "last_photo" in last.stderr
    text = cli(data, "images", "Cate").stdout.splitlines()
    assert len(text) == 1 and "original_2.jpg" in text[0] and str(second) in text[0]


def test_another_persons_face_is_not_added_unless_forced_and_goes_with_its_views(tmp_path: Path):
    """The issue's reproduction: George Clooney's photo added to Barack Obama was accepted (he
    is enrolled as nobody), and removing it left its views under Obama."""
    data = tmp_path / "data"
    assert cli(data, "enroll", "Obama", photo("Barack_Obama"), "--augment", "--views", "left,right").returncode == 0
    before, files = tree_digest(data), tree_digest(data / "images")
    wrong = cli(data, "add-photo", "Obama", photo("George_Clooney"), "--augment", "--views", "left,right")
    assert wrong.returncode == 6 and "not_this_person" in wrong.stderr, wrong.stderr
    assert "does not verify as person 1 (Obama)" in wrong.stderr and "--force" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert tree_digest(data) == before
    forced = cli(data, "add-photo", "Obama", photo("George_Clooney"), "--augment", "--views", "left,right", "--force")
    assert forced.returncode == 0, forced.stderr
    images = json.loads(cli(data, "--json", "images", "Obama").stdout)["images"]
    george = next(i for i in images if i["display_name"] == "original_2.jpg")
    made = [i["id"] for i in images if i["source_image_id"] == george["id"]]
    assert len(made) == 2 and all(i["source_image_id"] is not None for i in images if i["source"] != "original")
    removed = cli(data, "remove-image", "Obama", george["id"])
    assert removed.returncode == 0 and "with the 2 view(s) made from it" in removed.stdout, removed.stdout
    assert tree_digest(data / "images") == files  # George's photo and both views: no file left
    left = json.loads(cli(data, "--json", "images", "Obama").stdout)["images"]
    assert {i["id"] for i in left}.isdisjoint({george["id"], *made}) and len(left) == len(images) - 3
    probe = cli(data, "--json", "identify", photo("George_Clooney", 2))
    faces = json.loads(probe.stdout)["faces"]
    assert faces and faces[0]["identity"] is None  # nothing of George answers for Obama any more


def test_a_face_already_enrolled_under_another_name_is_refused_unless_forced(tmp_path: Path):
    data = tmp_path / "data"
    assert cli(data, "enroll", "Nicolas", photo("Nicolas_Cage")).returncode == 0
    before = tree_digest(data / "images")
    again = cli(data, "enroll", "Nick C", photo("Nicolas_Cage"), "--augment")
    assert again.returncode == 6 and "already_enrolled" in again.stderr and "'Nicolas'" not in again.stdout
    assert "identified as person 1" in again.stderr and "with this very photo" in again.stderr
    assert "--force" in again.stderr  # what to type, not the HTTP field
    assert tree_digest(data / "images") == before
    assert [p["name"] for p in json.loads(cli(data, "--json", "persons").stdout)] == ["Nicolas"]
    forced = cli(data, "enroll", "Nick C", photo("Nicolas_Cage"), "--force")
    assert forced.returncode == 0 and "as person 2" in forced.stdout, forced.stderr
    other = cli(data, "enroll", "Guido", photo("Guido_van_Rossum"))  # someone else: no question asked
    assert other.returncode == 0, other.stderr


def small_dataset(root: Path, identities: list[str]) -> Path:
    for identity in identities:
        (root / identity).mkdir(parents=True)
        for file in sorted((FACES / identity).glob("*.jpg")):
            (root / identity / file.name).symlink_to(file)
    return root


def test_eval_and_calibrate_on_a_few_people(tmp_path: Path):
    dataset = small_dataset(
        tmp_path / "faces",
        ["Angelina_Jolie", "Barack_Obama", "George_Clooney", "Jennifer_Aniston", "Katy_Perry", "Matt_Damon"],
    )
    data = tmp_path / "data"
    out = tmp_path / "report.json"
    done = cli(data, "eval", dataset, "--out", out, "--workers", "2", "--seeds", "2")
    assert done.returncode == 0, done.stderr
    # not a terminal: progress comes as plain log lines with a count, a rate and an ETA
    progress = [line for line in done.stderr.splitlines() if "embedding photos" in line]
    assert progress and "/s" in progress[-1] and "ETA" in progress[-1]
    n_photos = sum(1 for p in dataset.rglob("*.jpg"))
    assert f"{n_photos}/{n_photos} photos" in progress[-1]
    assert "rank-1" in done.stdout and "FNIR @ FPIR=1.0%" in done.stdout
    assert "+classic (blend) vs original" in done.stdout and "views through the gate" in done.stdout
    report = json.loads(out.read_text())
    rules = ["max", "mean", "blend", "top2"]
    configured_first = ["blend", "max", "mean", "top2"]  # the default model's rule first
    assert list(report["conditions"]) == ["original", *(f"+classic ({rule})" for rule in configured_first)]
    assert set(report["extra"]["views"]["classic"]) == set(CLASSIC_VIEWS)  # every view is made for the study
    assert report["conditions"]["+classic (max)"]["gallery_size"] > report["conditions"]["original"]["gallery_size"]
    crossval = report["crossval"]
    assert list(crossval["conditions"]) == [  # ArcFace's default views: all 10
        "original",
        "+classic default (10)",
        "+classic pose (4)",
        "+classic pose+expression (5)",
        "+classic photometric (5)",
    ]
    assert set(crossval["conditions"]["original"]) == set(rules)
    assert crossval["folds"] == 3 and crossval["seeds"] == 2  # 6 identities: 3 folds at most
    assert "cross-validated open set" in done.stdout
    mixed = crossval["conditions"]["+classic default (10)"]["blend"]["mixed"]
    assert {"with_views_share", "fnir_with", "fnir_offset", "fnir_with_offset", "views_offset"} <= set(mixed)
    assert report["nested"] is None and "selection on unseen people: skipped" in done.stdout  # 6 identities
    original = report["conditions"]["original"]
    assert report["n_identities"] == 6 and original["n_mated"] + original["n_impostor"] == original["n_closed_set"]
    assert original["rank1"] >= 0.9
    assert original["stored_threshold"] == pytest.approx(0.2622)  # ArcFace's shipped blend threshold

    calibrated = cli(
        data, "--json", "--verify-fmr", "0.5", "calibrate", dataset, "--target-fpir", "0.1", "--workers", "1"
    )
    assert calibrated.returncode == 0, calibrated.stderr
    *records, gate = json.loads(calibrated.stdout)
    fpirs = [r for r in records if r["kind"] == "fpir"]
    offsets = [r for r in records if r["kind"] == "views_offset"]
    one_to_one = [r for r in records if r["kind"] == "verify_fmr"]
    assert [f["rule"] for f in fpirs] == rules  # one threshold per matching rule
    assert [o["rule"] for o in offsets] == rules  # and one views offset
    assert [v["rule"] for v in one_to_one] == [*rules, "photos"] and len(records) == 3 * len(
        rules
    ) + 1  # and two photos
    for verify in one_to_one:  # one to one at verify_fmr: claims against persons, or photo pairs
        assert verify["target"] == 0.5 and 0 < verify["n_negative"] and -1 <= verify["threshold"] <= 1
    for offset in offsets:  # impostor pairs: 3 enrolled x the other 3 identities' probes, both ways
        assert offset["target"] == 0.001 and -0.1 < offset["threshold"] < 0.1 and offset["n_negative"] > 0
    for fpir in fpirs:
        assert fpir["target"] == 0.1 and fpir["kind"] == "fpir"
        assert fpir["n_negative"] == original["n_closed_set"]
        # galleries of half the six; the pair rate rests on a handful of pairs (one is 1/9 of them here)
        assert fpir["gallery_size"] == 3 and 0.0 <= fpir["person_fmr"] <= 0.2
        hits = fpir["person_fmr"] * fpir["fmr_pairs"]  # a count of the pairs it was measured over
        assert fpir["fmr_pairs"] > 0 and abs(hits - round(hits)) < 1e-6
    # for a gallery of a given size: its per-person rate, read off the impostor pairs
    sized = cli(data, "--json", "calibrate", dataset, "--target-fpir", "0.5", "--gallery-size", "2", "--no-views")
    assert sized.returncode == 0, sized.stderr
    for fpir in (r for r in json.loads(sized.stdout) if r["kind"] == "fpir"):  # 1 - 0.5 ** (1 / 2) = 0.29
        assert fpir["gallery_size"] == 2 and 0.2 <= fpir["person_fmr"] <= 0.2929
    too_big = cli(data, "calibrate", dataset, "--gallery-size", "1000", "--no-views")
    assert too_big.returncode == 3 and "a gallery of 1,000 persons at FPIR 0.01 needs" in too_big.stderr
    assert gate["rule"] == ""
    assert gate["kind"] == "gate_fmr" and gate["target"] == 0.001 and 0 < gate["threshold"] < 1

    bad_seeds = cli(data, "eval", dataset, "--seeds", "0")
    assert bad_seeds.returncode == 3 and "--seeds must be at least 1" in bad_seeds.stderr
    bad_repeats = cli(data, "eval", dataset, "--unseen-repeats", "-1")
    assert bad_repeats.returncode == 3 and "--unseen-repeats must be 0 or more" in bad_repeats.stderr
    not_a_dataset = cli(data, "eval", tmp_path / "missing")
    assert not_a_dataset.returncode == 3 and "not a folder" in not_a_dataset.stderr


def test_eval_with_stable_diffusion_views(tmp_path: Path):
    """`eval --sd-model DIR` adds a +sd column; a random-weight SD makes no faces: all rejected."""
    from core.augment.sd_build import random_img2img_pipeline

    random_img2img_pipeline("tiny", seed=0).save_pretrained(tmp_path / "sd")
    dataset = small_dataset(tmp_path / "faces", ["Barack_Obama", "George_Clooney", "Matt_Damon"])
    out = tmp_path / "report.json"
    env_steps = {"MANYANGLES_SD_STEPS": "4", "MANYANGLES_SD_DEVICE": "cpu"}
    os.environ.update(env_steps)
    try:
        done = cli(tmp_path / "data", "--sd-model", tmp_path / "sd", "eval", dataset, "--out", out, "--seeds", "1")
    finally:
        for key in env_steps:
            os.environ.pop(key)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert "+sd (max)" in report["conditions"] and "+classic (max)" in report["conditions"]
    assert "+sd default (7)" in report["crossval"]["conditions"]  # the same study, no code change
    sd_views = report["extra"]["views"]["sd"]
    assert set(sd_views) == {"left", "right", "up", "down", "smiling", "serious", "frontal"}
    assert all(v["acceptance_rate"] == 0.0 and v["generated"] == 3 for v in sd_views.values())
    assert report["conditions"]["+sd (max)"]["gallery_size"] == report["conditions"]["original"]["gallery_size"]

    # calibrate with the views the service would make: SD's (all rejected here: no views, offset 0)
    os.environ.update(env_steps)
    try:
        calibrated = cli(tmp_path / "data", "--sd-model", tmp_path / "sd", "calibrate", dataset)
    finally:
        for key in env_steps:
            os.environ.pop(key)
    assert calibrated.returncode == 0, calibrated.stderr
    assert "half the gallery with sd views" in calibrated.stdout and "views offsets" in calibrated.stdout

    missing = cli(tmp_path / "data", "--sd-model", tmp_path / "nope", "eval", dataset, "--out", out)
    assert (
        missing.returncode == 7 and "model_unavailable" in missing.stderr and str(tmp_path / "nope") in missing.stderr
    )


def test_the_manyangles_console_script_is_the_same_cli(tmp_path: Path):
    script = Path(sys.executable).with_name("manyangles")
    assert script.exists(), "pyproject.toml's console script is installed by `make install`"
    done = subprocess.run(
        [str(script), "--data-dir", str(tmp_path), "--json", "persons"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    bad = subprocess.run(
        [str(script), "--data-dir", str(tmp_path), "--top-k", "0", "persons"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "top_k='0'" in bad.stderr


def test_merge_a_face_enrolled_twice(tmp_path: Path):
    data = tmp_path / "data"
    assert cli(data, "enroll", "Paul", photo("Paul_Allen", 1)).returncode == 0
    assert cli(data, "enroll", "Paul Again", photo("Paul_Allen", 2), "--force").returncode == 0
    assert cli(data, "enroll", "Tommy", photo("Tommy_Haas", 1)).returncode == 0
    before = tree_digest(data)
    wrong = cli(data, "merge", "Paul", "Tommy")
    assert wrong.returncode == 6 and "not_this_person" in wrong.stderr and "merge them anyway" in wrong.stderr
    assert "Traceback" not in wrong.stderr and tree_digest(data) == before
    merged = cli(data, "--json", "merge", "Paul", "Paul Again")
    assert merged.returncode == 0, merged.stderr
    body = json.loads(merged.stdout)
    assert body["person"]["name"] == "Paul" and body["images"] == 1 and body["embeddings"] == 1
    persons = [p["name"] for p in json.loads(cli(data, "--json", "persons").stdout)]
    assert persons == ["Paul", "Tommy"]
    logged = cli(data, "access-log", "--action", "merge")
    assert logged.returncode == 0 and f"person {body['merged']}" in logged.stdout
