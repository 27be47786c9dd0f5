"""A gallery made with dlib, upgraded to the release where ArcFace is the default: it goes on
answering with dlib, says a better model is available, and after `reembed --model arcface`
identifies its people with ArcFace."""

from __future__ import annotations

import json
from pathlib import Path

from core.faces.active import upgrade_notice
from core.service import ManyAnglesService
from core.settings import Settings
from core.store.model_versions import active_model

from conftest import cli, local_service, photo_bytes

PEOPLE = ("Barack_Obama", "Angelina_Jolie", "George_Clooney", "Katy_Perry")
DLIB, ARCFACE = "dlib-resnet-v1-flip", "arcface-mbf-w600k"


def named(service: ManyAnglesService, person: str) -> tuple[str, str | None]:
    found = service.identify(photo_bytes(person, 2))
    identity = found.faces[0].match.identity
    return found.model, None if identity is None else identity.name


def test_a_dlib_gallery_keeps_dlib_then_reembeds_and_switches_to_arcface(tmp_path: Path, dlib_models):
    data = tmp_path / "data"
    made = local_service(Settings(data_dir=data, detector="dlib", embedder="dlib"), dlib_models)
    made.enroll(PEOPLE[0], photo_bytes(PEOPLE[0]), augment=True, views=["left", "bright"])
    for person in PEOPLE[1:]:
        made.enroll(person, photo_bytes(person))

    # the upgrade: the same data dir, today's default settings (ArcFace)
    settings = Settings(data_dir=data)
    upgraded = ManyAnglesService.from_settings(settings)
    assert upgraded.model.name == DLIB and upgraded.rule() == "top2"  # nothing changed under the admin's feet
    assert [named(upgraded, p) for p in PEOPLE] == [(DLIB, p) for p in PEOPLE]
    notice = upgrade_notice(settings, active_model(upgraded.store))
    assert notice is not None and "A more accurate model is available" in notice
    assert "manyangles reembed --model arcface" in notice and "non-commercial" in notice
    assert "set embedder and detector to dlib" in notice
    listed = cli(data, "models")
    assert listed.returncode == 0 and "note: A more accurate model is available" in listed.stdout
    # an admin who chose dlib on purpose is not told to leave it
    assert upgrade_notice(Settings(data_dir=data, detector="dlib", embedder="dlib"), active_model(made.store)) is None

    done = cli(data, "--json", "reembed", "--model", "arcface", "--no-ray")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    # every image: 4 photos and the 2 views of the first person
    assert report["active"] == ARCFACE and report["switched"] and report["embedded"] == 6
    # the same service process follows the pointer: ArcFace, its own rule, every person named
    assert [named(upgraded, p) for p in PEOPLE] == [(ARCFACE, p) for p in PEOPLE]
    assert upgraded.rule() == "blend" and upgraded.threshold() == 0.2622
    assert upgrade_notice(settings, active_model(upgraded.store)) is None
    # nor, the other way round, one who configured dlib and switched to ArcFace by hand
    assert upgrade_notice(Settings(data_dir=data, detector="dlib", embedder="dlib"), active_model(made.store)) is None
    listed = cli(data, "models")
    assert "note:" not in listed.stdout and f"active    {ARCFACE}" in listed.stdout
