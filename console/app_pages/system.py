"""Health of each deployment, models, device, gallery size, configuration."""

from __future__ import annotations

from typing import Any

import streamlit as st

from console.access_view import access_section
from console.client import ApiError
from console.config import api, load_config
from console.duplicates_view import duplicates_section
from console.jobs_view import jobs_section
from console.keys_view import keys_section
from console.models_view import models_section
from console.text import plain


def _rows(info: dict[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """A deployment's health as (field, value) rows: nested fields dotted, lists joined, unset ones left out."""
    rows: list[dict[str, str]] = []
    for key, value in info.items():
        if value is None or key == "status":
            continue
        if isinstance(value, dict):
            rows += _rows(value, f"{prefix}{key}.")
        else:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            rows.append({"field": f"{prefix}{key}", "value": shown})
    return rows


def gallery_fit_rows(thresholds: dict[str, Any]) -> list[dict[str, str]]:
    """What the identify threshold holds at the gallery's size, as (field, value) rows."""
    fmr, expected, holds = thresholds["person_fmr"], thresholds["expected_fpir"], thresholds["holds_up_to"]
    rate = "not measured (calibrate again)" if fmr is None else f"{fmr:.2e}"
    persons = "unknown" if holds is None else f"{holds:,} persons"
    fpir = "unknown" if expected is None else f"{expected:.2%}"
    if thresholds["person_fmr_interval"] is not None:  # how sure: the pairs the rate rests on
        (low, high), (fewest, most) = thresholds["person_fmr_interval"], thresholds["holds_up_to_interval"]
        rate += f" (95% CI {low:.1e} to {high:.1e}: {thresholds['fmr_hits']:,} of {thresholds['fmr_pairs']:,} pairs)"
        persons += f" (95% CI {fewest:,} to {'any number' if most is None else f'{most:,}'})"
        fpir += " (95% CI {:.2%} to {:.2%})".format(*thresholds["expected_fpir_interval"])
    values = {
        "persons enrolled": f"{thresholds['persons']:,}",
        "per-person false match rate": rate,
        "expected FPIR at this size": fpir,
        f"FPIR {100 * thresholds['target_fpir']:g}% holds up to": persons,
    }
    if thresholds["calibrated_for"] is not None:
        values["calibrated for"] = f"{thresholds['calibrated_for']:,} persons"
    return [{"field": k, "value": v} for k, v in values.items()]


st.title("System")
config = load_config()
st.caption(f"API {config.api_url} - key {config.masked_key} - data dir {config.data_dir or 'remote (HTTP only)'}")
try:
    health = api().health()
except ApiError as exc:
    st.error(plain(exc.friendly()))
    st.info("Start the service with `make run`, or point MANYANGLES_API_URL at it.")
    st.stop()
st.metric("Status", health["status"])
for notice in health.get("notices", []):
    st.warning(plain(notice))
model = health["deployments"]["embedder"].get("model")
if model:
    st.subheader(f"Model: {model['name']}")
    st.table(  # a table wraps the licences whole (a dataframe cuts them at the column's width)
        [
            {"part": "embedding", "name": model["name"], "source": model["source"], "licence": model["licence"]},
            {
                "part": "detection",
                "name": model["detector"],
                "source": model["detector_source"],
                "licence": model["detector_licence"],
            },
        ]
    )
    if "non-commercial" in model["licence"]:
        st.caption(
            "These weights are insightface's, for non-commercial research use. The permissive models (dlib's) "
            "are one setting away: embedder and detector `dlib` (MANYANGLES_EMBEDDER=dlib MANYANGLES_DETECTOR=dlib)."
        )
    st.caption("A gallery changes model by re-embedding every image, then switching (Model versions, below).")
for name, info in health["deployments"].items():
    st.subheader(f"{name}: {info['status']}")
    rows = _rows(info)  # SD-only fields are unset (left out) for the classic generator
    st.dataframe(rows, hide_index=True, use_container_width=True, height=35 * (len(rows) + 1) + 3)
try:
    st.metric("Persons", api().persons(limit=1)["total"])
    thresholds = api().thresholds()
except ApiError as exc:
    st.error(plain(exc.friendly()))
    st.stop()
st.subheader("Thresholds")
in_use = {
    "model": thresholds["model"],
    "matching rule": thresholds["match_mode"],
    "target FPIR": thresholds["target_fpir"],
    "identify threshold": thresholds["identify_threshold"],
    "identity-gate threshold": thresholds["gate_threshold"],
    "views offset (subtracted from persons with views)": thresholds["views_offset"],
    "one-to-one FMR (verify)": thresholds["verify_fmr"] or "0: at the identify threshold",
    "verify threshold (a photo against a person)": thresholds["verify_threshold"],
    "verify threshold (two photos)": thresholds["verify_photos_threshold"],
}
st.dataframe([{"field": k, "value": str(v)} for k, v in in_use.items()], hide_index=True, use_container_width=True)
for problem in thresholds["problems"]:
    st.warning(problem)
st.caption(
    "the gallery's size: a stranger is falsely accepted when ANY enrolled person clears the threshold, "
    "so FPIR grows with the persons enrolled"
)
st.dataframe(gallery_fit_rows(thresholds), hide_index=True, use_container_width=True)
for warning in thresholds["warnings"]:
    st.warning(plain(warning))
st.caption(f"shipped with the model (FPIR {100 * thresholds['target_fpir']:g}%), per matching rule")
offsets = thresholds["shipped_views_offsets"]
st.dataframe(
    [
        {"rule": rule, "threshold": value, "views offset": offsets.get(rule, 0.0)}
        for rule, value in thresholds["shipped"].items()
    ],
    hide_index=True,
)
st.caption("calibrated and stored (`manyangles calibrate`)")
if thresholds["stored"]:
    st.dataframe(thresholds["stored"], hide_index=True)
else:
    st.info("None stored: the shipped values are in use.")

duplicates_section()
models_section()
jobs_section()
keys_section()
access_section()
