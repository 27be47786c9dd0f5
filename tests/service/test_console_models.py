"""The System page's model versions against the session's real Serve application: the models
table, a re-embedding started from the page (a real `manyangles reembed` process; insightface's
weights are not on this machine, so its job fails and says why), and, for a model version that
is not the active one, the refused switch and the removal of its vectors."""

from __future__ import annotations

import time
from typing import Any

import httpx

from console.models_view import REEMBED, model_rows

from conftest import AUTH, off_process, photo_bytes
from console_pages import page

OTHER = "test-other-model"


def _job_when_done(client: httpx.Client, job_id: int, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
        if job["state"] != "running":
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.5)


def _no_reembedding_running(client: httpx.Client) -> None:
    for job in client.get("/v1/jobs", headers=AUTH).json():
        if job["kind"] == "reembed" and job["state"] == "running":
            _job_when_done(client, job["id"])


def _table(at: Any, column: str) -> Any:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_the_system_page_starts_a_reembedding_and_shows_why_it_failed(console_env: httpx.Client):
    _no_reembedding_running(console_env)
    at = page("system")
    assert not at.exception, at.exception
    models = console_env.get("/v1/models", headers=AUTH).json()
    table = _table(at, "vectors")
    shown = dict(zip(table["model"], zip(table["status"], table["vectors"], strict=True), strict=True))
    active = next(m for m in models["models"] if m["status"] == "active")
    assert shown[models["active"]] == ("active", f"{active['num_embeddings']:,}")

    form = next(s for s in at.selectbox if s.label == "Model")
    assert form.value == "dlib"  # the active model is ArcFace: the first other one is offered
    form.set_value("insightface")  # a pack this machine does not have: the job fails, and says why
    next(b for b in at.button if b.label == REEMBED).click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    started = [s.value.replace("\\", "") for s in at.success if "embedding job" in s.value]
    assert len(started) == 1 and started[0].endswith("started with insightface."), started
    job_id = int(started[0].split()[2])
    job = _job_when_done(console_env, job_id)
    assert (job["kind"], job["model"], job["state"]) == ("reembed", "insightface", "failed")
    assert "buffalo_l" in job["message"]

    at.run()  # the page says why, whole, and so does the batch jobs table
    said = f"The newest re-embedding (job {job_id}, insightface) failed: {job['message']}"
    assert said in [w.value.replace("\\", "") for w in at.warning], at.warning
    jobs = _table(at, "job")
    row = list(jobs["job"]).index(str(job_id))
    assert (jobs["kind"][row], jobs["state"][row], jobs["message"][row]) == ("reembed", "failed", job["message"])
    assert console_env.get("/v1/models", headers=AUTH).json()["active"] == models["active"]  # nothing switched


_ADD_MODEL = """
import json, sys
import numpy as np
from core.store.gallery import GalleryStore
from core.store.model_versions import EmbeddedImage, register_model, write_embedded
args = json.loads(sys.argv[1])
store = GalleryStore(args["data_dir"])
register_model(store, args["name"], 4, {"embedder": "dlib", "detector": "dlib"}, {"top2": 0.5})
vector = np.full(4, 0.5, np.float32)
print(write_embedded(store, args["name"], [EmbeddedImage(args["image_id"], "original", vector)])[0])
"""
_DROP_MODEL = """
import json, sqlite3, sys
args = json.loads(sys.argv[1])
db = sqlite3.connect(args["db"])
with db:
    db.execute("DELETE FROM embeddings WHERE model = ?", (args["name"],))
    db.execute("DELETE FROM models WHERE name = ?", (args["name"],))
db.close()
print(1)
"""


def test_a_model_version_that_is_not_active_is_refused_until_complete_and_can_be_removed(console_env: httpx.Client):
    """A second model with a vector for one image of a person enrolled with a view: switching to
    it is refused (the view has no vector of it), naming what is missing; removing its vectors
    leaves the model retired with none, and the active model untouched."""
    enrolled = console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Models Alex", "use_augmentation": "true", "views": "bright"},
        files={"photo": ("p.jpg", photo_bytes("Alex_Lacamoire"), "image/jpeg")},
    )
    assert enrolled.status_code == 201, enrolled.text
    person = enrolled.json()["person_id"]
    data_dir = console_env.data_dir  # type: ignore[attr-defined]
    try:
        images = console_env.get(f"/v1/persons/{person}", headers=AUTH).json()["images"]
        original = next(i["id"] for i in images if i["source"] == "original")
        assert off_process(_ADD_MODEL, data_dir=data_dir, name=OTHER, image_id=original) == 1
        active = console_env.get("/v1/models", headers=AUTH).json()["active"]

        gallery = page("gallery")  # every model's vectors are counted
        gallery.text_input[0].input("Models Alex").run()
        assert not gallery.exception, gallery.exception
        [row] = gallery.session_state["gallery_rows"]
        assert (row["images"], row["embeddings"]) == (2, 3)
        opened = page("person", {"id": str(person)})  # and the person's page says of which model
        assert not opened.exception, opened.exception
        said = [c.value for c in opened.caption if "embedding(s) of" in c.value]
        assert len(said) == 1 and f"2 embedding(s) of {active}" in said[0] and f"1 embedding(s) of {OTHER}" in said[0]

        at = page("system")
        assert not at.exception, at.exception
        table = _table(at, "vectors")
        row = list(table["model"]).index(OTHER)
        assert (table["status"][row], table["vectors"][row], table["dim"][row]) == ("building", "1", "4")
        chosen = next(s for s in at.selectbox if s.label == "Another model version")
        assert chosen.value == OTHER
        next(b for b in at.button if b.label == f"Switch to {OTHER}").click().run()
        assert not at.exception, at.exception
        assert len(at.error) == 1 and f"have no {OTHER} vector yet" in at.error[0].value.replace("\\", ""), at.error
        assert console_env.get("/v1/models", headers=AUTH).json()["active"] == active

        next(c for c in at.checkbox if c.label == f"I want to remove every vector of {OTHER}").check().run()
        next(b for b in at.button if b.label == "Remove its 1 vector(s)").click().run()
        assert not at.exception and not at.error, (at.exception, at.error)
        assert any(f"Every vector of {OTHER}" in s.value.replace("\\", "") for s in at.success)
        after = {m["name"]: m for m in console_env.get("/v1/models", headers=AUTH).json()["models"]}
        assert (after[OTHER]["status"], after[OTHER]["num_embeddings"]) == ("retired", 0)
        assert after[active]["status"] == "active" and after[active]["num_embeddings"] > 0
        table = _table(at, "vectors")
        assert table["vectors"][list(table["model"]).index(OTHER)] == "0"
        assert not [c for c in at.checkbox if c.label.startswith("I want to remove")]  # nothing left to remove
    finally:
        off_process(_DROP_MODEL, db=data_dir / "gallery.db", name=OTHER)
        console_env.delete(f"/v1/persons/{person}", headers=AUTH)


def test_model_rows_by_hand():
    models = {
        "active": "b",
        "models": [
            {
                "name": "a", "dim": 128, "status": "retired", "num_embeddings": 12345, "spec": {"embedder": "dlib"},
                "thresholds": {"top2": 0.93721, "gate": 0.9}, "created_at": "x", "activated_at": "2026-11-01T10:00:00+00:00",
            },
            {
                "name": "b", "dim": 512, "status": "active", "num_embeddings": 7, "spec": {"embedder": "insightface", "detector": "insightface"},
                "thresholds": {}, "created_at": "y", "activated_at": "2026-11-28T17:00:00.123+00:00",
            },
        ],
    }  # fmt: skip
    assert model_rows(models) == [
        {
            "model": "a", "status": "retired", "vectors": "12,345", "dim": "128", "loaded with": "embedder dlib",
            "thresholds": "gate 0.9000, top2 0.9372", "active since": "",
        },
        {
            "model": "b", "status": "active", "vectors": "7", "dim": "512",
            "loaded with": "detector insightface, embedder insightface", "thresholds": "", "active since": "2026-11-28 17:00:00",
        },
    ]  # fmt: skip
