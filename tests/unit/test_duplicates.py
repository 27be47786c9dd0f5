"""`manyangles duplicates`: faces the gallery holds twice, each pair once, over the real dlib models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.search.duplicates import find_duplicates
from core.settings import Settings
from core.store.audits import AuditSearch, latest_audit

from conftest import cli, local_service, photo_bytes


def test_a_face_enrolled_twice_is_listed_once_and_gone_with_the_copy(tmp_path: Path, default_models):
    service = local_service(Settings(data_dir=tmp_path / "data"), default_models)
    obama = service.enroll("Barack Obama", photo_bytes("Barack_Obama"), augment=True, views=["left", "smiling"])
    for who in ("Angelina_Jolie", "George_Clooney"):
        service.enroll(who.replace("_", " "), photo_bytes(who))
    model, rule, threshold = service.model.name, service.rule(), service.threshold()
    offset = service.views_offset()
    assert find_duplicates(service.store, model, rule, threshold, offset) == []

    barry = service.enroll("Barry", photo_bytes("Barack_Obama", 2), force=True)  # another photo of him
    [pair] = find_duplicates(service.store, model, rule, threshold, offset)
    assert (pair.person_id, pair.name, pair.other_id, pair.other) == (
        obama.person_id,
        "Barack Obama",
        barry.person_id,
        "Barry",
    )
    assert threshold <= pair.score < 1.0 and pair.threshold == threshold
    # the pair's score is the better direction: Barry's photo searched among Obama's entries
    # (top2 under the views offset) or Obama's photo against Barry's one entry
    found = service.identify(photo_bytes("Barack_Obama", 2)).faces[0].match.candidates
    assert pair.score >= max(c.score for c in found if c.person_id == obama.person_id) - 1e-6
    assert find_duplicates(service.store, model, rule, 1.01, 0.0) == []  # nothing clears an impossible threshold

    done = cli(tmp_path / "data", "--json", "duplicates")
    assert done.returncode == 0, done.stderr
    assert [(p["name"], p["other"]) for p in json.loads(done.stdout)] == [("Barack Obama", "Barry")]
    assert latest_audit(service.store) is None  # not saved without --save
    saved = cli(tmp_path / "data", "duplicates", "--save")
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.strip().endswith(f"1 pair(s) at {rule} >= {threshold:.4f} ({model})")
    audit = latest_audit(service.store)
    assert audit is not None and audit.search == AuditSearch(model, rule, threshold, offset)
    assert audit.pairs == (pair,) and audit.photos == 4  # the views are not searched

    service.delete(barry.person_id)
    assert find_duplicates(service.store, model, rule, threshold, offset) == []
    audit = latest_audit(service.store)
    assert audit is not None and audit.pairs == ()  # the stored pair went with Barry


@pytest.mark.parametrize("exact_max", [50_000, 1_000])  # exact, then the HNSW search with exact re-rank
def test_planted_copies_are_found_in_a_larger_gallery(tmp_path: Path, exact_max: int):
    from bench.duplicates import MODEL, plant
    from bench.gallery_scale import build_store
    from core.store.gallery import GalleryStore

    build_store(tmp_path, 600)  # 3,600 embeddings, half the persons with 10 views
    planted = plant(tmp_path / "gallery.db", 600, 5)
    found = find_duplicates(GalleryStore(tmp_path), MODEL, "top2", 0.9372, 0.0052, exact_max=exact_max)
    assert {(p.person_id, p.other_id) for p in found} == planted
    assert all(p.name.startswith("person ") and p.other.startswith("copy ") for p in found)


def test_the_service_refuses_a_gallery_too_large_for_one_request(service):
    from core.errors import TooLargeForRequest

    service.enroll("Ada", photo_bytes("Barack_Obama"))
    assert service.duplicates(max_embeddings=1) == []  # one embedding: searched
    service.enroll("Ada Again", photo_bytes("Barack_Obama", 2), force=True)
    [pair] = service.duplicates(max_embeddings=2)
    assert {pair.name, pair.other} == {"Ada", "Ada Again"}
    with pytest.raises(TooLargeForRequest, match="POST /v1/duplicates/jobs"):
        service.duplicates(max_embeddings=1)
