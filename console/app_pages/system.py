"""The service at a glance, then its details, then the admin's tools.

First a summary: whether each part works (the API, the Embedder, the Generator), the model and
the terms its weights come under, the persons enrolled, the thresholds in words and what they
hold at this gallery's size, and what an operator should know (notices, warnings). Then the raw
fields, folded away (health, the model card, every threshold). Then the tools, each shown only to
a key that may use it: faces enrolled twice, model versions, batch jobs, API keys, the access log.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from console.access_view import access_section
from console.client import ApiError
from console.config import api, grants, load_config
from console.duplicates_view import duplicates_section
from console.jobs_view import jobs_section
from console.keys_view import keys_section
from console.models_view import models_section
from console.text import plain

PARTS = {"embedder": "Embedder", "generator": "Generator"}


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


def false_matches(rate: float, of: str) -> str:
    """A false match rate as people say it: 0.01 of "searches" -> "1 false match in 100
    searches", 0.015 -> "false matches in 1.5% of searches"."""
    n = 1 / rate
    if math.isclose(n, round(n), rel_tol=1e-6):
        return f"1 false match in {round(n):,} {of}"
    return f"false matches in {rate:.2%} of {of}".replace(".00%", "%")


def threshold_words(thresholds: dict[str, Any]) -> list[str]:
    """The thresholds in use, in words (Markdown): identification, then one-to-one verification."""
    rule, fpir = thresholds["match_mode"], thresholds["target_fpir"]
    identify = thresholds["identify_threshold"]
    lines = [
        "**Identification:** not calibrated for this model and rule (see the warnings below)"
        if identify is None
        else f"**Identification:** a face is named when its score is at least **{identify:.4f}** "
        f"({false_matches(fpir, 'searches of strangers')}, {rule} rule)"
    ]
    fmr, person, photos = (
        thresholds["verify_fmr"],
        thresholds["verify_threshold"],
        thresholds["verify_photos_threshold"],
    )
    if person is None or photos is None:
        lines.append("**Verification:** not calibrated (see the warnings below)")
    elif fmr:
        lines.append(
            f"**Verification:** the same person when the score is at least **{person:.4f}** for a photo against an "
            f"enrolled person, **{photos:.4f}** for two photos ({false_matches(fmr, 'claims')})"
        )
    else:
        lines.append(
            f"**Verification:** at the identification threshold: **{person:.4f}** for a photo against an enrolled "
            f"person, **{photos:.4f}** for two photos"
        )
    expected, holds = thresholds["expected_fpir"], thresholds["holds_up_to"]
    if expected is not None:
        size = (
            f"**Gallery size:** with {thresholds['persons']:,} persons enrolled, about {expected:.1%} of "
            f"strangers' searches would name someone (the target: {100 * fpir:g}%)"
        )
        lines.append(size + ("" if holds is None else f"; the threshold holds up to {holds:,} persons"))
    return lines


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


def _part(name: str, info: dict[str, Any]) -> str:
    """A deployment's state in a word."""
    return "working" if info.get("status") == "ok" else "down"


def _model_lines(model: dict[str, Any]) -> list[str]:
    lines = [
        f"**Model:** {plain(model['name'])} ({model['dim']}-D embeddings, on {plain(model['provider'])}), faces found "
        f"by {plain(model['detector'])}",
        f"**Licence of its weights:** {plain(model['licence'] or 'not stated')}",
    ]
    if model["detector_licence"] and model["detector_licence"] != model["licence"]:
        lines.append(f"**Licence of the detector's weights:** {plain(model['detector_licence'])}")
    return lines


def summary(health: dict[str, Any] | None, persons: int | None, thresholds: dict[str, Any] | None) -> None:
    """The service at a glance: each part's state, the model, the persons, the thresholds in
    words, and what an operator should know."""
    deployments = (health or {}).get("deployments", {})
    api_state, embedder, generator, enrolled = st.columns(4)
    api_state.metric("API", "working" if health is not None else "down")
    for column, (name, title) in zip((embedder, generator), PARTS.items(), strict=True):
        info = deployments.get(name, {})
        column.metric(title, _part(name, info) if health is not None else "unknown", help=info.get("error"))
    enrolled.metric("Persons enrolled", "unknown" if persons is None else f"{persons:,}")
    for name, title in PARTS.items():
        info = deployments.get(name, {})
        if health is not None and info.get("status") != "ok":
            consequence = (
                "nothing can be enrolled or identified"
                if name == "embedder"
                else "enrollment with views fails; identification and enrollment without views work"
            )
            st.error(f"The {title} is down ({consequence}): {plain(info.get('error') or 'no reason given')}")
    if health is None:
        return
    model = deployments.get("embedder", {}).get("model")
    lines = _model_lines(model) if model else []
    generator_name = deployments.get("generator", {}).get("generator")
    if generator_name:
        where = deployments["generator"].get("device")
        lines.append(
            f"**Views made by:** the {plain(generator_name)} generator" + (f" on {plain(where)}" if where else "")
        )
    if thresholds is not None:
        lines += threshold_words(thresholds)
    st.markdown("  \n".join(lines))
    if model and "non-commercial" in model["licence"]:
        st.caption(
            "These weights are insightface's, for non-commercial research use. The permissive models (dlib's) "
            "are one setting away: embedder and detector `dlib` (MANYANGLES_EMBEDDER=dlib MANYANGLES_DETECTOR=dlib); "
            "a gallery changes model by re-embedding every image, then switching (Model versions, below)."
        )
    for notice in health.get("notices", []):
        st.warning(plain(notice))
    if thresholds is not None:
        for problem in thresholds["problems"]:
            st.warning(plain(problem))
        for warning in thresholds["warnings"]:
            st.warning(plain(warning))


def details(health: dict[str, Any], thresholds: dict[str, Any] | None) -> None:
    """The raw fields, folded away."""
    with st.expander("Details: raw health (GET /v1/health)"):
        for name, info in health["deployments"].items():
            st.markdown(f"**{PARTS.get(name, name)}**: {info['status']}")
            rows = _rows(info)  # SD-only fields are unset (left out) for the classic generator
            st.dataframe(rows, hide_index=True, width="stretch", height=35 * (len(rows) + 1) + 3)
    model = health["deployments"]["embedder"].get("model")
    if model:
        with st.expander("Details: the model, where its weights come from, and their licences"):
            _model_details(model)
    if thresholds is None:
        return
    with st.expander("Details: thresholds (GET /v1/thresholds)"):
        _threshold_details(thresholds)


def _model_details(model: dict[str, Any]) -> None:
    st.table(  # a table wraps the licences whole (a dataframe cuts them at the column's width)
        [
            {
                "part": "embedding",
                "name": model["name"],
                "source": model["source"],
                "licence": model["licence"],
            },
            {
                "part": "detection",
                "name": model["detector"],
                "source": model["detector_source"],
                "licence": model["detector_licence"],
            },
        ]
    )


def _threshold_details(thresholds: dict[str, Any]) -> None:
    """The thresholds in use, how they fit the gallery's size, the shipped ones and the stored ones."""
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
    st.caption("in use now")
    st.dataframe([{"field": k, "value": str(v)} for k, v in in_use.items()], hide_index=True, width="stretch")
    st.caption(
        "the gallery's size: a stranger is falsely accepted when ANY enrolled person clears the threshold, "
        "so FPIR grows with the persons enrolled"
    )
    st.dataframe(gallery_fit_rows(thresholds), hide_index=True, width="stretch")
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


st.title("System")
health: dict[str, Any] | None = None
persons: int | None = None
thresholds: dict[str, Any] | None = None
problems: list[str] = []
try:
    health = api().health()
    persons = int(api().persons(limit=1)["total"])
    thresholds = api().thresholds()
except ApiError as exc:
    problems.append(plain(exc.friendly()))
summary(health, persons, thresholds)
for problem in problems:
    st.error(problem)
if health is None:
    st.info("Start the service with `make run`, or point MANYANGLES_API_URL at it.")
    st.stop()
assert health is not None
config = load_config()
st.caption(f"API {config.api_url} - data dir {config.data_dir or 'remote (HTTP only)'}")
details(health, thresholds)

allowed = grants()
if "admin" in allowed:
    duplicates_section()
if "read" in allowed:
    models_section(manage="admin" in allowed)
    jobs_section()
if "admin" in allowed:
    keys_section()
    access_section()
