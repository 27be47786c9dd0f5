"""Who is in this photo? Every face boxed with its label and candidates; verify two photos."""

from __future__ import annotations

import streamlit as st

from console.client import ApiError, Upload
from console.config import api
from console.drawing import boxed
from console.text import plain

st.title("Identify and verify")
probe = st.file_uploader("Probe photo", type=["jpg", "jpeg", "png", "webp"], key="probe")
top_k = st.slider("Candidates per face", 1, 10, 5)
if probe is not None and st.button("Identify", type="primary"):
    try:
        found = api().identify(Upload(probe.name, probe.getvalue(), probe.type or "image/jpeg"), top_k)
    except ApiError as exc:
        st.error(plain(exc.friendly()))
        st.stop()
    st.session_state["identify_result"] = found
    faces = found["faces"]
    colors = ["lime" if face["identity"] else "red" for face in faces]
    st.image(boxed(probe.getvalue(), [f["bbox"] for f in faces], [f["label"] for f in faces], colors))
    if not found["faces"]:
        st.warning("No face found in the photo.")
    try:  # a gallery past what its threshold holds names strangers more often: say so here too
        outgrown = api().thresholds()["warnings"]
    except ApiError:  # an identify-only key may not read the thresholds
        outgrown = []
    for warning in outgrown:
        st.warning(plain(warning))
    for i, face in enumerate(found["faces"]):
        st.markdown(
            f"**Face {i}: {plain(face['label'])}** (threshold {found['threshold']:.4f}, rule {found['match_mode']})"
        )
        rows = [{**c, "clears threshold": c["score"] >= found["threshold"]} for c in face["candidates"]]
        st.dataframe(rows, hide_index=True)

st.divider()
st.subheader("Verify: same person?")
a = st.file_uploader("Photo A", type=["jpg", "jpeg", "png", "webp"], key="a")
b = st.file_uploader("Photo B", type=["jpg", "jpeg", "png", "webp"], key="b")
if a is not None and b is not None and st.button("Verify"):
    try:
        verdict = api().verify(Upload(a.name, a.getvalue()), Upload(b.name, b.getvalue()))
    except ApiError as exc:
        st.error(plain(exc.friendly()))
        st.stop()
    text = "Same person" if verdict["same_person"] else "Different persons"
    st.metric(text, f"{verdict['score']:.4f}", f"threshold {verdict['threshold']:.4f}")
