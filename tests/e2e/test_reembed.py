"""Model versions: re-embedding on Ray Data (real local Ray instances, the real CLI), resume after
a kill, the atomic switch, identification during it, prune."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.errors import ModelNotReady, ModelSwitching
from core.faces.loading import load_face_models
from core.settings import Settings
from core.store.gallery import GalleryStore
from core.store.jobs import list_jobs
from core.store.model_versions import activate_model, active_model, list_models, prune_model
from core.store.records import StoredThreshold

from conftest import AUTH, FACES, REPO, embedder_photos, local_service, photo_bytes
from onnx_builders import write_pack

PEOPLE = ("Barack_Obama", "Angelina_Jolie", "George_Clooney", "Matt_Damon", "Katy_Perry", "Clint_Eastwood")
TINY = "insightface-tinypack-w_tiny"
DLIB = "dlib-resnet-v1-flip"
ARCFACE = "arcface-mbf-w600k"


def tiny_settings(root: Path, **kw) -> Settings:
    write_pack(root)
    return Settings(
        data_dir=root / "data",
        detector="insightface",
        embedder="insightface",
        insightface_root=root,
        insightface_pack="tinypack",
        **kw,
    )


def calibrate_tiny(store: GalleryStore) -> None:
    """What `manyangles calibrate` stores for a model (the tiny pack ships no threshold)."""
    for rule in ("top2", "max"):
        store.set_threshold(StoredThreshold(TINY, "fpir", rule, 0.01, 0.9, 1000, "test", "2026-01-01"))


def cli(settings: Settings, *args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "core",
        "--data-dir",
        str(settings.data_dir),
        "--insightface-root",
        str(settings.insightface_root),
        "--insightface-pack",
        settings.insightface_pack,
        *args,
    ]
    env = {**(env or os.environ), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


def vectors(settings: Settings, model: str) -> tuple[int, int, int]:
    """(vectors of the model, distinct images they cover, images in the gallery)."""
    with sqlite3.connect(settings.data_dir / "gallery.db") as conn:
        count, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT image_id) FROM embeddings WHERE model = ?", (model,)
        ).fetchone()
        images = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    return count, distinct, images


def test_dlib_gallery_reembedded_with_insightface_identifies_after_the_switch(tmp_path: Path, dlib_models):
    # 'max': the enrolled photo itself must come first (the tiny random ArcFace scores every
    # pair of faces high, so a mean over a person's views could rank someone else first)
    settings = tiny_settings(tmp_path).replace(detector="dlib", embedder="dlib", match_mode="max")
    service = local_service(settings, dlib_models)
    service.enroll(PEOPLE[0], photo_bytes(PEOPLE[0]), augment=True, views=["left", "right"])
    for name in PEOPLE[1:4]:
        service.enroll(name, photo_bytes(name))
    images = vectors(settings, DLIB)[2]
    assert active_model(service.store).name == DLIB

    # not calibrated: the vectors are built, the switch is refused, dlib stays active
    refused = cli(settings, "reembed", "--model", "insightface", "--workers", "1")
    refused.communicate(timeout=240)
    assert refused.returncode == 6
    assert vectors(settings, TINY) == (images, images, images)
    assert active_model(service.store).name == DLIB
    assert service.identify(photo_bytes(PEOPLE[1])).model == DLIB

    calibrate_tiny(service.store)
    out = finish(cli(settings, "--json", "reembed", "--model", "insightface", "--workers", "1"))
    assert f'"active": "{TINY}"' in out and '"total": 0' in out  # nothing left to embed: switched
    states = {m.name: m.status for m in list_models(service.store)}
    assert states == {DLIB: "retired", TINY: "active"}

    # the same service process follows the pointer: it loads the new model and answers with it
    for name in PEOPLE[:4]:
        found = service.identify(photo_bytes(name))
        assert found.model == TINY
        top = found.faces[0].match.candidates[0]
        assert top.name == name and top.score > 0.999  # the enrolled photo itself, same model
    with pytest.raises(ModelSwitching):  # an enrollment embedded by the old model is refused
        service.store.add_person(_old_model_enrollment(service))
    assert prune_model(service.store, DLIB) == images
    assert vectors(settings, DLIB)[0] == 0
    assert service.identify(photo_bytes(PEOPLE[2])).faces[0].match.candidates[0].name == PEOPLE[2]


def _old_model_enrollment(service):
    import numpy as np

    from core.store.records import Enrollment, NewEmbedding, NewImage

    vector = np.ones(128, np.float32) / np.sqrt(128)
    image = NewImage(b"x" * 10, "ab" * 32, ".jpg", "image/jpeg", 1, 1, "original", "original.jpg")
    return Enrollment("Late Comer", [image], [NewEmbedding(0, "original", DLIB, vector, 0.9, (0, 0, 1, 1))])


def test_killed_reembed_resumes_and_embeds_every_image_exactly_once(tmp_path: Path):
    settings = tiny_settings(tmp_path)
    service = local_service(settings, load_face_models(settings))
    names = [p.name for p in sorted(FACES.iterdir()) if (p / "1.jpg").is_file()][:24]
    for name in names:
        service.enroll(name, photo_bytes(name))
    images = vectors(settings, TINY)[2]

    job = cli(settings, "reembed", "--model", "dlib", "--workers", "1", "--batch-size", "2", start_new_session=True)
    deadline = time.monotonic() + 180
    while vectors(settings, DLIB)[0] < 4:
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before it could be killed"
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)  # the driver and its private Ray instance
    job.wait(timeout=30)
    partial = vectors(settings, DLIB)[0]
    assert 4 <= partial < images
    assert active_model(service.store).name == TINY  # nothing switched half-way

    finish(cli(settings, "reembed", "--model", "dlib", "--workers", "1", "--batch-size", "2"))
    store = GalleryStore(settings.data_dir)
    count, distinct, _ = vectors(settings, DLIB)
    with sqlite3.connect(settings.data_dir / "gallery.db") as conn:
        skipped = conn.execute("SELECT COUNT(*) FROM reembed_skips WHERE model = ?", (DLIB,)).fetchone()[0]
    assert count == distinct and count + skipped == images  # each image once: a vector or a recorded skip
    assert active_model(store).name == DLIB
    jobs = list_jobs(store)
    assert [j.state for j in jobs[:2]] == ["done", "failed"] and "interrupted" in jobs[1].message
    assert jobs[0].total == images - partial


def test_identify_during_reembed_and_switch_answers_from_exactly_one_model(tmp_path: Path, dlib_models):
    settings = tiny_settings(tmp_path).replace(detector="dlib", embedder="dlib")
    service = local_service(settings, dlib_models)
    for name in PEOPLE:
        service.enroll(name, photo_bytes(name))
    calibrate_tiny(service.store)
    probes = {name: photo_bytes(name) for name in PEOPLE}
    answers: list[tuple[str, str, float]] = []
    retried: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for name, photo in probes.items():
                try:
                    found = service.identify(photo)
                except ModelSwitching as exc:
                    retried.append(exc.message)
                    continue
                top = found.faces[0].match.candidates[0]
                answers.append((found.model, top.name if top.name == name else f"WRONG {top.name}", top.score))

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        finish(cli(settings, "reembed", "--model", "insightface", "--workers", "1"))
        deadline = time.monotonic() + 60
        while not any(model == TINY for model, _, _ in answers) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=60)
    models = [model for model, _, _ in answers]
    assert DLIB in models and TINY in models
    first_new = models.index(TINY)
    assert set(models[first_new:]) == {TINY}  # once switched, never back
    # every answer is the right person at the score of the same photo under one model: a probe
    # of one model against vectors of another would score near 0
    assert all(name in PEOPLE and score > 0.999 for _, name, score in answers), answers[:5]
    assert len(retried) <= 1


def test_switch_refuses_an_incomplete_model(tmp_path: Path, dlib_models):
    settings = tiny_settings(tmp_path).replace(detector="dlib", embedder="dlib")
    service = local_service(settings, dlib_models)
    service.enroll(PEOPLE[0], photo_bytes(PEOPLE[0]))
    from core.store.model_versions import register_model

    register_model(service.store, TINY, 512, {"embedder": "insightface"}, {})
    with pytest.raises(ModelNotReady, match="1 image"):
        activate_model(service.store, TINY, {"top2": 0.5})
    assert active_model(service.store).name == DLIB


def test_a_process_started_with_a_retired_models_settings_loads_only_the_active_one(tmp_path: Path):
    """After a switch, a replica restarted with the old settings loads the active model alone,
    not the configured one first: it serves even where the old model's weights are gone."""
    import shutil

    from core.faces.active import ActiveModelFaces, model_spec
    from core.store.model_versions import get_model, register_model

    settings = tiny_settings(tmp_path)  # configured: the tiny insightface pack
    store = GalleryStore(settings.data_dir)
    register_model(store, TINY, 512, model_spec(settings), {})  # recorded once, then switched away from
    dlib = model_spec(settings.replace(detector="dlib", embedder="dlib"))
    register_model(store, DLIB, 128, dlib, {}, activate_if_none=True)
    assert active_model(store).name == DLIB and get_model(store, TINY).spec == model_spec(settings)
    shutil.rmtree(tmp_path / "models" / "tinypack")  # the old model can no longer load
    faces = ActiveModelFaces(settings, store, in_service=False)
    try:
        assert faces.info.name == DLIB
        analyzed = faces.analyze(photo_bytes(PEOPLE[0]))
        assert [face.vector.shape for face in analyzed.faces] == [(128,)]
    finally:
        faces.close()
    # nor is a configured model the gallery never recorded (its weights absent here): a gallery
    # answers with its active model until it is re-embedded, whatever the settings say
    other = ActiveModelFaces(tiny_settings(tmp_path / "other").replace(insightface_pack="missing"), store, False)
    try:
        assert other.info.name == DLIB
    finally:
        other.close()


def test_reembed_over_http_models_and_job_status(api):
    """The routes on the shared app: a job that has nothing to do completes and reports it; a
    model that cannot load here fails fast and its job says why; keys and bad bodies refused."""

    assert api.post("/v1/models/reembed", json={"model": "dlib"}).status_code == 401
    bad = api.post("/v1/models/reembed", json={"model": "resnet"}, headers=AUTH)
    assert bad.status_code == 422 and "model" in bad.json()["error"]["message"]
    as_form = api.post("/v1/models/reembed", data={"model": "resnet", "switch": "false"}, headers=AUTH)
    assert as_form.status_code == 422 and "model" in as_form.json()["error"]["message"]  # read as JSON is

    models = api.get("/v1/models", headers=AUTH).json()
    assert models["active"] == ARCFACE and {m["name"]: m["status"] for m in models["models"]}[ARCFACE] == "active"

    def wait_job(job_id: int) -> dict:
        deadline = time.monotonic() + 120
        while True:
            job = api.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
            if job["state"] != "running" or time.monotonic() > deadline:
                return job
            time.sleep(0.5)

    started = api.post("/v1/models/reembed", data={"model": "arcface"}, headers=AUTH)  # a form, as curl -F sends
    assert started.status_code == 202, started.text
    job = wait_job(started.json()["id"])
    assert job["state"] == "done" and job["fraction"] == 1.0 and job["model"] == ARCFACE, job

    missing = api.post("/v1/models/reembed", json={"model": "insightface"}, headers=AUTH)
    assert missing.status_code == 202
    job = wait_job(missing.json()["id"])
    assert job["state"] == "failed" and "buffalo_l" in job["message"], job
    assert api.get("/v1/models", headers=AUTH).json()["active"] == ARCFACE  # nothing changed
    assert api.get("/v1/jobs/999999", headers=AUTH).status_code == 404


def test_reembed_on_a_running_ray_cluster_by_address(tmp_path: Path):
    """`ray start --head` on loopback (free ports, its own temp dir), the job sent to it by
    address, then the head stopped: the way an operator uses an existing cluster."""
    from ray_nodes import RayCluster

    from conftest import free_port

    settings = tiny_settings(tmp_path)
    service = local_service(settings, load_face_models(settings))
    for name in PEOPLE[:3]:
        service.enroll(name, photo_bytes(name))
    cluster = RayCluster(Path(f"/tmp/ma-ray-{free_port()}"))  # short: Ray's socket paths must stay under 108 bytes
    try:
        cluster.head(2, {})
        cluster.wait_for(1)
        out = finish(
            cli(
                settings,
                *("--json", "reembed", "--model", "dlib", "--workers", "1", "--address", cluster.address),
                env=cluster.client_env(),
            ),
            timeout=300,
        )
        assert f'"active": "{DLIB}"' in out
        assert vectors(settings, DLIB)[:2] == (3, 3)
        logs = cluster.temp / "session_latest" / "logs"
        assert any("ReembedWorker" in f.read_text(errors="ignore") for f in logs.glob("*worker*") if f.is_file())
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def switching_app(serve_port: int, tmp_path_factory: pytest.TempPathFactory):
    """A second Serve app on its own gallery (dlib), with the tiny insightface pack at hand."""
    import httpx
    from ray import serve

    from serve.app import compose
    from serve.config import deployment_options

    from conftest import KEY

    root = tmp_path_factory.mktemp("switching")
    settings = tiny_settings(root).replace(detector="dlib", embedder="dlib", api_key=KEY)
    serve.run(compose(settings, deployment_options()), name="switching", route_prefix="/switching")
    with httpx.Client(base_url=f"http://127.0.0.1:{serve_port}/switching", timeout=300) as client:
        client.settings = settings  # type: ignore[attr-defined]
        yield client
    serve.delete("switching")


def test_the_service_keeps_answering_through_a_switch_and_its_embedder_follows(switching_app):
    client, settings = switching_app, switching_app.settings
    for name in PEOPLE[:3]:
        r = client.post("/v1/persons", headers=AUTH, data={"name": name}, files={"photo": ("p.jpg", photo_bytes(name))})
        assert r.status_code == 201, r.text
    calibrate_tiny(GalleryStore(settings.data_dir))
    since = time.time()
    lone = client.post("/v1/identify", headers=AUTH, files={"photo": ("p.jpg", photo_bytes(PEOPLE[0]))})
    assert lone.status_code == 200 and lone.json()["model"] == DLIB, lone.text
    assert embedder_photos(client, since) == 1  # dlib's photos go to the Embedder, never the API's copy
    answers: list[tuple[int, str, str, float]] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for name in PEOPLE[:3]:
                r = client.post("/v1/identify", headers=AUTH, files={"photo": ("p.jpg", photo_bytes(name))})
                if r.status_code != 200:
                    answers.append((r.status_code, r.json()["error"]["code"], "", 0.0))
                    continue
                top = r.json()["faces"][0]["candidates"][0]
                answers.append((200, r.json()["model"], top["name"] if top["name"] == name else "WRONG", top["score"]))

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        finish(cli(settings, "reembed", "--model", "insightface", "--workers", "1"))
        deadline = time.monotonic() + 60
        while not any(a[1] == TINY for a in answers) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=60)
    served = [a for a in answers if a[0] == 200]
    refused = [a for a in answers if a[0] != 200]
    assert all(a[:2] == (503, "model_switching") for a in refused), refused
    models = [a[1] for a in served]
    assert DLIB in models and TINY in models, models[-5:]
    assert set(models[models.index(TINY) :]) == {TINY}
    assert all(a[2] in PEOPLE and a[3] > 0.999 for a in served), served[:5]
    assert client.get("/v1/health").json()["models"]["embedder"] == TINY
    # an ONNX model: the API replica loads its own copy after the switch, in the background (the
    # Embedder answers meanwhile), then analyses a lone photo itself
    deadline, here = time.monotonic() + 30, False
    while not here and time.monotonic() < deadline:
        since = time.time()
        lone = client.post("/v1/identify", headers=AUTH, files={"photo": ("p.jpg", photo_bytes(PEOPLE[0]))})
        assert lone.status_code == 200 and lone.json()["model"] == TINY, lone.text
        here = embedder_photos(client, since) == 0
        time.sleep(0.2)
    assert here, "30 s after the switch the API replica still sends lone photos to the Embedder"


def test_a_job_s_fraction_is_zero_while_its_work_is_counted():
    from core.schemas.admin import JobOut
    from core.store.jobs import JobRecord

    def job(state: str, total: int, done: int = 0, skipped: int = 0) -> JobRecord:
        stamp = "2026-11-27T00:00:00.000+00:00"
        return JobRecord(1, "reembed", DLIB, state, total, done, skipped, None, None, None, stamp, stamp, None)

    assert JobOut.of(job("running", 0)).fraction == 0.0  # just started: a progress bar at 0, not full
    assert JobOut.of(job("done", 0)).fraction == 1.0  # nothing was to do
    assert JobOut.of(job("failed", 0)).fraction == 1.0
    assert JobOut.of(job("running", 10, done=3, skipped=1)).fraction == pytest.approx(0.4)
