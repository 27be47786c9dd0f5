"""Enroll a person from one photo; generation progress streams live, then the preview grid."""

from __future__ import annotations

import streamlit as st

from console.client import ApiError, Upload
from console.config import api

VIEWS = ["left", "right", "up", "down", "smiling", "serious"]

st.title("Enroll a person")
name = st.text_input("Name")
uploaded = st.file_uploader("Photo", type=["jpg", "jpeg", "png", "webp"])
camera = st.camera_input("...or take a photo") if st.toggle("Use the camera") else None
augment = st.checkbox("Use AI augmentation (recommended)", value=True)
views = st.multiselect("Views to generate", VIEWS, default=VIEWS[:5], disabled=not augment)
custom = st.text_input("Custom view (optional, e.g. 'wearing glasses')", disabled=not augment)
with st.expander("Advanced"):
    seed = int(st.number_input("Seed", min_value=0, value=0, step=1))
    face = st.selectbox("Several faces in the photo", ["single", "largest", "0", "1", "2", "3"])

if st.button("Enroll", type="primary"):
    source = uploaded or camera
    if not name.strip() or source is None:
        st.error("Give a name and a photo.")
        st.stop()
    photo = Upload(source.name or "photo.jpg", source.getvalue(), source.type or "image/jpeg")
    wanted = views + ([custom.strip()] if custom.strip() else [])
    total = len(wanted) if augment else 0
    result, error = None, None
    eta = ""
    if total:
        try:  # an ETA from recent generation latencies, and what will generate
            health = api().health()
            recent = [v["latency_s"] for run in api().generation_runs(limit=50) for v in run["views"]]
            generator = health["deployments"]["generator"]
            eta = f" with {generator.get('generator')} on {generator.get('device')}"
            if recent:
                eta += f", about {sorted(recent)[len(recent) // 2] * total:.1f} s for {total} view(s)"
        except ApiError:
            pass
    with st.status(f"Enrolling{eta}...", expanded=True) as status:
        bar = st.progress(0.0, text="Uploading")
        try:
            for line in api().enroll_stream(name, photo, augment, wanted, seed, face):
                if line["type"] == "progress":
                    stage = line["stage"]
                    if stage == "generated":
                        bar.progress(
                            line["index"] / max(line["total"], 1) * 0.8,
                            text=f"Generating synthetic angles ({line['index']}/{line['total']})...",
                        )
                    elif stage == "stored":
                        bar.progress(1.0, text="Stored")
                    st.write(line["message"])
                elif line["type"] == "result":
                    result = line
                else:
                    error = line["error"]
        except ApiError as exc:
            error = {"code": exc.code, "message": exc.friendly()}
        if result is not None:
            bar.progress(1.0, text="Done")
            status.update(label=f"Enrolled {result['name']} ({result['num_embeddings']} embeddings)", state="complete")
        else:
            status.update(label="Enrollment failed", state="error")
    if error is not None:
        st.error(
            f"{error['message']} ({error['code']})" if error.get("code") not in ("api_down",) else error["message"]
        )
        st.stop()
    assert result is not None
    st.session_state["last_enrollment"] = result
    st.success(f"Enrolled {result['name']} as person {result['person_id']} in {result['elapsed_s']:.1f} s")
    detail = api().person(result["person_id"])
    images = {i["source"]: i for i in detail["images"]}
    tiles = [("original", images.get("original"), None)] + [
        (view["source"], images.get(view["source"]) if view["accepted"] else None, view) for view in result["views"]
    ]
    for row in range(0, len(tiles), 4):
        for column, (source_tag, image, view) in zip(st.columns(4), tiles[row : row + 4]):
            with column:
                if image is not None:
                    st.image(api().image(image["url"]), use_container_width=True)
                st.markdown(f"**{source_tag}**")
                if view is None:
                    st.caption("the uploaded photo")
                elif view["accepted"]:
                    st.caption(f":green[accepted] - similarity {view['similarity']:.3f}")
                else:
                    sim = "" if view["similarity"] is None else f" - similarity {view['similarity']:.3f}"
                    st.caption(f":red[rejected] ({view['reason']}){sim}")
