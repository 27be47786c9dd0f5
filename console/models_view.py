"""The System page's model versions: every model the gallery has vectors of, a re-embedding of
the whole gallery with another model (a batch job: `POST /v1/models/reembed`), and, for a model
that is not the active one, the switch back to it (a rollback) or the removal of its vectors."""

from __future__ import annotations

from typing import Any

import streamlit as st

from console.client import ApiError
from console.config import api
from console.text import plain

REEMBED = "Start the re-embedding"
EMBEDDERS = ("arcface", "dlib", "insightface")  # what `POST /v1/models/reembed` accepts


def model_rows(models: dict[str, Any]) -> list[dict[str, str]]:
    """A ModelsResponse as table rows: status, vectors, what loads it, its thresholds."""
    rows = []
    for m in models["models"]:
        spec = ", ".join(f"{k} {v}" for k, v in sorted(m["spec"].items()))
        thresholds = ", ".join(f"{k} {v:.4f}" for k, v in sorted(m["thresholds"].items()))
        rows.append(
            {
                "model": m["name"],
                "status": m["status"],
                "vectors": f"{m['num_embeddings']:,}",
                "dim": str(m["dim"]),
                "loaded with": spec,
                "thresholds": thresholds,
                "active since": (m["activated_at"] or "")[:19].replace("T", " ") if m["status"] == "active" else "",
            }
        )
    return rows


def _show_outcome() -> None:
    """What the last action on this section did (kept across the rerun that shows its result)."""
    if notice := st.session_state.pop("models_notice", None):
        st.success(plain(notice))


def _reembed_form(models: dict[str, Any]) -> None:
    active = next((m["spec"].get("embedder") for m in models["models"] if m["status"] == "active"), None)
    others = [i for i, kind in enumerate(EMBEDDERS) if kind != active]
    with st.form("reembed"):
        st.caption(
            "embeds every stored photo and view with another model in a background process (the service keeps "
            "answering with the active model meanwhile), then switches to it; follow it under Batch jobs"
        )
        embedder = st.selectbox("Model", EMBEDDERS, index=others[0] if others else 0)
        switch = st.checkbox("Switch to it when every image has a vector", value=True)
        allow_missing = st.checkbox(
            "Switch even if it finds no face in every photo of some persons (they could no longer be identified)"
        )
        if st.form_submit_button(REEMBED):
            try:
                job = api().start_reembed(embedder, switch, allow_missing)
            except ApiError as exc:
                st.error(plain(exc.friendly()))
            else:
                st.session_state["models_notice"] = f"Re-embedding job {job['id']} started with {embedder}."
                st.rerun()


def _other_model(models: dict[str, Any]) -> None:
    """Switch to, or remove the vectors of, a model that is not the active one."""
    others = [m for m in models["models"] if m["status"] != "active"]
    if not others:
        return
    name = st.selectbox("Another model version", [m["name"] for m in others])
    chosen = next(m for m in others if m["name"] == name)
    left, right = st.columns(2)
    allow_missing = left.checkbox("even if some persons would have no vector of it", key="activate-missing")
    if left.button(f"Switch to {name}", help="every image needs a vector of it (re-embed with no switch first)"):
        try:
            api().activate_model(name, allow_missing)
        except ApiError as exc:
            st.error(plain(exc.friendly()))
        else:
            st.session_state["models_notice"] = f"{name} is now the active model."
            st.rerun()
    if chosen["num_embeddings"] and right.checkbox(f"I want to remove every vector of {name}"):
        if right.button(f"Remove its {chosen['num_embeddings']:,} vector(s)", type="primary"):
            try:
                api().prune_model(name)
            except ApiError as exc:
                st.error(plain(exc.friendly()))
            else:
                st.session_state["models_notice"] = f"Every vector of {name} was removed."
                st.rerun()


def _newest_reembedding() -> None:
    """The reason the newest re-embedding failed, whole (the jobs table cuts long messages)."""
    try:
        jobs = [j for j in api().jobs() if j["kind"] == "reembed"]
    except ApiError:
        return  # the jobs table below says why
    if jobs and jobs[0]["state"] == "failed":
        st.warning(
            plain(f"The newest re-embedding (job {jobs[0]['id']}, {jobs[0]['model']}) failed: {jobs[0]['message']}")
        )


def models_section(manage: bool = True) -> None:
    """The model versions; ``manage`` (an admin key): with the re-embedding, the switch and the
    removal of a model's vectors."""
    st.subheader("Model versions")
    st.caption("every vector is stored with the model that made it; identification uses the active model only")
    _show_outcome()
    try:
        models = api().models()
    except ApiError as exc:
        st.caption(plain(exc.friendly()))
        return
    st.dataframe(model_rows(models), hide_index=True, width="stretch")
    _newest_reembedding()
    if not manage:
        st.caption("re-embedding, switching and removing a model's vectors take an admin key")
        return
    _other_model(models)
    _reembed_form(models)
