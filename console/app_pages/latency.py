"""Latency: how long the service takes, call by call. Enrollment and identify / verify end to end,
side by side, over time and as medians; each by stage; the Embedder's batch sizes; generation per
view (p50/p95 by generator, device, steps and view count) and, for Stable Diffusion, by stage
(seconds and GPU peak).

Every chart has a title and its units; times are UTC. A line joins consecutive calls only: where
the service sat idle for more than ``GAP`` it breaks (each call is a point as well, so a lone one
shows)."""

from __future__ import annotations

import re

import altair as alt
import pandas as pd
import streamlit as st

from console.client import ApiError
from console.config import api
from console.text import plain

STAGES = ["prompt", "vae_encode", "denoise", "vae_decode", "to_uint8"]
GAP = pd.Timedelta(minutes=10)  # a longer pause between two calls breaks the line between them
CALLS = {  # GET /v1/stats/searches kinds, as the page names them
    "identify": "identify",
    "verify": "verify (two photos)",
    "verify_person": "verify (a person)",
}
SEARCH_STAGES = {  # stage -> what it covers
    "analyze": "analyze (decode, detect, embed)",
    "search": "search the gallery",
    "compare": "compare the two faces",
    "score": "score against the person",
}
TIME_FORMAT = "%b %d %H:%M:%S"


def _utc(created_at: pd.Series) -> pd.Series:
    """Times as naive UTC: Vega draws them as they read (a zoned time would be moved to the
    browser's clock while the axis says UTC)."""
    return pd.to_datetime(created_at, utc=True, format="ISO8601").dt.tz_localize(None)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


@st.cache_data(ttl=10)
def _generation_runs(url: str) -> list[dict]:
    return api().generation_runs()


def _runs(runs: list[dict]) -> pd.DataFrame:
    rows = [
        {
            "time": run["created_at"],
            "generator": run["generator"],
            "device": run["device"],
            "steps": run["steps"],
            "views": run["num_views"],
            "view": view["view"],
            "latency_s": view["latency_s"],
            "run_total_s": run["total_s"],
        }
        for run in runs
        for view in run["views"]
    ]
    frame = pd.DataFrame(
        rows, columns=["time", "generator", "device", "steps", "views", "view", "latency_s", "run_total_s"]
    )
    frame["time"] = _utc(frame["time"])
    return frame


def _stages(runs: list[dict]) -> pd.DataFrame:
    """One row per (run, stage) of the generator calls that recorded stages (Stable Diffusion)."""
    rows = [
        {
            "time": run["created_at"],
            "group": f"{run['device']} {run['dtype']}, {run['num_views']} views",
            "stage": stage["name"],
            "seconds": stage["seconds"],
            "peak_gb": None if stage["peak_mem_bytes"] is None else stage["peak_mem_bytes"] / 1e9,
        }
        for run in runs
        for stage in run.get("stages", [])
    ]
    frame = pd.DataFrame(rows, columns=["time", "group", "stage", "seconds", "peak_gb"])
    frame["time"] = _utc(frame["time"])
    return frame


@st.cache_data(ttl=10)
def _enrollments(url: str) -> pd.DataFrame:
    rows = [
        {
            "time": run["created_at"],
            "model": run["model"],
            "views": run["num_views"],
            "accepted": run["num_accepted"],
            "total_s": run["total_s"],
            **{f"{stage}_s": seconds for stage, seconds in run["timings_s"].items() if stage != "total"},
        }
        for run in api().enrollment_runs()
    ]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["time"] = _utc(frame["time"])
    return frame


@st.cache_data(ttl=10)
def _searches(url: str) -> pd.DataFrame:
    """Identify and verify calls: one row each, the total and every stage in milliseconds."""
    rows = [
        {
            "time": run["created_at"],
            "call": CALLS.get(run["kind"], run["kind"]),
            "faces": run["faces"],
            "total_ms": 1000 * run["total_s"],
            **{f"{stage}_ms": 1000 * s for stage, s in run["timings_s"].items() if stage != "total"},
        }
        for run in api().searches()
    ]
    frame = pd.DataFrame(rows, columns=None if rows else ["time", "call", "faces", "total_ms"])
    frame["time"] = _utc(frame["time"])
    return frame


@st.cache_data(ttl=10)
def _batches(url: str) -> pd.DataFrame:
    points = api().batching()["recent"]
    frame = pd.DataFrame(points, columns=["time", "faces", "kind"])
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True).dt.tz_localize(None)
    return frame


def _segmented(frame: pd.DataFrame, color: str) -> pd.DataFrame:
    """``frame`` with a ``segment`` column: within each ``color``, a new segment after each pause
    longer than GAP (a line is drawn within a segment only)."""
    ordered = frame.sort_values("time").copy()
    pause = ordered.groupby(color, dropna=False)["time"].diff() > GAP
    ordered["segment"] = pause.groupby(ordered[color], dropna=False).cumsum().astype(int)
    return ordered


def _over_time(
    frame: pd.DataFrame, y: str, color: str, title: str, y_title: str, line: bool = True
) -> alt.LayerChart | alt.Chart:
    """``y`` over wall-clock time (UTC), one colour per value of ``color`` (a category, never a
    scale). Every call is a point (a lone one is visible); with ``line``, consecutive calls of one
    colour are joined, except across a pause longer than GAP. The time axis reads in hours,
    minutes and seconds whatever the span (Vega's own picks milliseconds for calls within one
    second)."""
    data = _segmented(frame, color) if line else frame
    tooltip = [alt.Tooltip("time:T", title="time (UTC)", format="%Y-%m-%d %H:%M:%S"), alt.Tooltip(f"{color}:N")]
    base = alt.Chart(data).encode(
        x=alt.X(
            "time:T",
            title="time (UTC)",
            axis=alt.Axis(format=TIME_FORMAT, labelAngle=-30, tickCount=6, labelOverlap="greedy"),
        ),
        y=alt.Y(f"{y}:Q", title=y_title),
        color=alt.Color(f"{color}:N", title=color),
        tooltip=[*tooltip, alt.Tooltip(f"{y}:Q", title=y_title, format=".3~f")],
    )
    points = base.mark_point(filled=True, size=40)
    if not line:
        return points.properties(title=title)
    return alt.LayerChart(layer=[base.mark_line().encode(detail="segment:N"), points], title=title)


def _stacked(
    frame: pd.DataFrame, group: str, stages: list[str], title: str, x_title: str, group_title: str | None = None
) -> alt.Chart:
    """Median time per stage, stacked, one bar per ``group`` (``frame``: groups x stages; a
    column's unit suffix, ``_s`` or ``_ms``, is left out of its name)."""
    long = frame.rename_axis(columns=None).reset_index()
    long = long.melt(id_vars=group, value_vars=stages, var_name="stage", value_name="median")
    long[group] = long[group].astype(str)
    long["stage"] = long["stage"].str.replace(r"_m?s$", "", regex=True)
    stages = [re.sub(r"_m?s$", "", s) for s in stages]
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("median:Q", title=x_title, stack="zero"),
            y=alt.Y(f"{group}:N", title=group_title or group),
            color=alt.Color("stage:N", title="stage", sort=stages),
            order=alt.Order("stage_order:Q"),
            tooltip=[alt.Tooltip(f"{group}:N"), alt.Tooltip("stage:N"), alt.Tooltip("median:Q", format=".4~f")],
        )
        .transform_calculate(stage_order=f"indexof({stages!r}, datum.stage)")
        .properties(title=title)
    )


def _in_range(frame: pd.DataFrame, start: object, end: object) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[(frame["time"].dt.date >= start) & (frame["time"].dt.date <= end)]


def _typical(enrolled: pd.DataFrame, searched: pd.DataFrame) -> list[dict[str, str]]:
    """Calls, median and 95th percentile per kind of call (enrollment by views asked for)."""
    rows = []
    for views, group in enrolled.groupby("views") if not enrolled.empty else []:
        seconds = group["total_s"]
        kind = f"enroll, {views} view(s)" if views else "enroll, no views"
        rows.append((kind, len(seconds), seconds.median(), seconds.quantile(0.95)))
    for call in CALLS.values():
        if searched.empty:
            break
        seconds = searched.loc[searched["call"] == call, "total_ms"] / 1000
        if len(seconds):
            rows.append((call, len(seconds), seconds.median(), seconds.quantile(0.95)))
    return [
        {"call": kind, "calls": f"{n:,}", "median": _duration(p50), "95th percentile": _duration(p95)}
        for kind, n, p50, p95 in rows
    ]


st.title("Latency")
st.caption(
    "how long the service takes, call by call (times in UTC); a line joins consecutive calls, and breaks "
    f"where the service sat idle for more than {GAP.seconds // 60} minutes"
)
try:
    url = api().base_url
    generation = _generation_runs(url)
    frame, enrollments, searches, batches = _runs(generation), _enrollments(url), _searches(url), _batches(url)
except ApiError as exc:
    st.error(plain(exc.friendly()))
    st.stop()
if frame.empty and enrollments.empty and searches.empty:
    st.info("Nothing timed yet: enroll someone (with views to see generation), or identify a photo.")
    st.stop()
times = pd.concat([f["time"] for f in (frame, enrollments, searches) if not f.empty])
first, last = times.min().date(), times.max().date()
picked = st.date_input("Dates (UTC)", (first, last))
dates = list(picked) if isinstance(picked, tuple | list) else [picked]
start, end = (dates[0], dates[-1]) if dates else (first, last)  # a range being picked has one date

enrolled, searched = _in_range(enrollments, start, end), _in_range(searches, start, end)
st.subheader("End to end")
left, right = st.columns(2)
with left:
    if enrolled.empty:
        st.info("No enrollment in these dates.")
    else:
        st.altair_chart(
            _over_time(enrolled, "total_s", "views", "Enrollment, end to end (by views asked for)", "seconds"),
            width="stretch",
        )
with right:
    if searched.empty:
        st.info("No identify or verify call in these dates.")
    else:
        st.altair_chart(
            _over_time(searched, "total_ms", "call", "Identify and verify, end to end", "milliseconds"),
            width="stretch",
        )
typical = _typical(enrolled, searched)
if typical:
    st.dataframe(typical, hide_index=True)
    st.caption("the service's own time per call (decoding, detection, embedding, search, storing), not the network's")

st.subheader("By stage")
left, right = st.columns(2)
with left:
    if not enrolled.empty:
        stages = [c for c in enrolled.columns if c.endswith("_s") and c != "total_s"]
        medians = enrolled.groupby("views")[stages].median()
        st.altair_chart(
            _stacked(
                medians,
                "views",
                stages,
                "Enrollment, median by stage (by views asked for)",
                "seconds",
                "views asked for",
            ),
            width="stretch",
        )
        st.dataframe(medians.round(3), width="stretch")
        st.download_button("Download CSV", enrolled.to_csv(index=False), "enrollment_latency.csv", "text/csv")
with right:
    if not searched.empty:
        steps = [f"{s}_ms" for s in SEARCH_STAGES if f"{s}_ms" in searched.columns]
        by_call = searched.groupby("call")[steps].median()
        st.altair_chart(
            _stacked(by_call, "call", steps, "Identify and verify, median by stage", "milliseconds"), width="stretch"
        )
        st.caption("; ".join(f"{stage}: {meaning}" for stage, meaning in SEARCH_STAGES.items()))
        st.download_button(
            "Download CSV", searched.to_csv(index=False), "search_latency.csv", "text/csv", key="search-csv"
        )

st.subheader("Embedder batch sizes")
st.caption(
    "A lone photo is analysed by the API replica's own copy of the model: only the photos that arrive while it is busy, verify's and /v1/embed's photos and the views come here."
)
batched = _in_range(batches, start, end)
if batched.empty:
    st.info("No embedding batch recorded since the Embedder replica started.")
else:
    st.altair_chart(
        _over_time(batched, "faces", "kind", "Faces per Embedder call", "faces per batch", line=False),
        width="stretch",
    )
    st.caption(f"{len(batched)} batch(es), mean {batched['faces'].mean():.1f} faces, max {batched['faces'].max()}")

st.subheader("Generation, per view")
shown = _in_range(frame, start, end)
if shown.empty:
    st.info("No generated view in these dates: enroll someone with augmentation.")
else:
    st.altair_chart(_over_time(shown, "latency_s", "view", "Time to generate one view", "seconds"), width="stretch")
    summary = (
        shown.groupby(["generator", "device", "steps", "views"], dropna=False)["latency_s"]
        .quantile([0.5, 0.95])
        .unstack()
        .rename(columns={0.5: "p50_s", 0.95: "p95_s"})
        .reset_index()
    )
    st.dataframe(summary, hide_index=True)
    st.download_button(
        "Download CSV", shown.to_csv(index=False), "generation_latency.csv", "text/csv", key="generation-csv"
    )

st.subheader("Generation, by stage")
staged = _in_range(_stages(generation), start, end)
if staged.empty:
    st.info("No stage timings in these dates: Stable Diffusion records them, the classic generator has none.")
else:
    seconds = staged.pivot_table(index="group", columns="stage", values="seconds", aggfunc="median")
    ordered = [s for s in STAGES if s in seconds.columns]
    seconds.index.name = "call"
    st.altair_chart(
        _stacked(
            seconds[ordered], "call", ordered, "Stable Diffusion, median by stage (all views in one call)", "seconds"
        ),
        width="stretch",
    )
    peaks = staged.pivot_table(index="group", columns="stage", values="peak_gb", aggfunc="max")
    st.dataframe(peaks[[s for s in STAGES if s in peaks.columns]].round(2), width="stretch")
    st.caption("highest GPU memory peak per stage, GB (CUDA only)")
