"""Latency: generation per view over time, p50/p95 by generator, device, steps and view count;
Stable Diffusion by stage (seconds and GPU peak); enrollment end to end by stage; the Embedder's
batch sizes over time."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from console.client import ApiError
from console.config import api
from console.text import plain

STAGES = ["prompt", "vae_encode", "denoise", "vae_decode", "to_uint8"]


@st.cache_data(ttl=10)
def _generation_runs(url: str) -> list[dict]:
    return api().generation_runs()


def _runs(runs: list[dict]) -> pd.DataFrame:
    rows = []
    for run in runs:
        for view in run["views"]:
            rows.append(
                {
                    "time": pd.Timestamp(run["created_at"]),
                    "generator": run["generator"],
                    "device": run["device"],
                    "steps": run["steps"],
                    "views": run["num_views"],
                    "view": view["view"],
                    "latency_s": view["latency_s"],
                    "run_total_s": run["total_s"],
                }
            )
    return pd.DataFrame(rows)


def _stages(runs: list[dict]) -> pd.DataFrame:
    """One row per (run, stage) of the generator calls that recorded stages (Stable Diffusion)."""
    rows = [
        {
            "time": pd.Timestamp(run["created_at"]),
            "group": f"{run['device']} {run['dtype']}, {run['num_views']} views",
            "stage": stage["name"],
            "seconds": stage["seconds"],
            "peak_gb": None if stage["peak_mem_bytes"] is None else stage["peak_mem_bytes"] / 1e9,
        }
        for run in runs
        for stage in run.get("stages", [])
    ]
    return pd.DataFrame(rows, columns=["time", "group", "stage", "seconds", "peak_gb"])


@st.cache_data(ttl=10)
def _enrollments(url: str) -> pd.DataFrame:
    rows = [
        {
            "time": pd.Timestamp(run["created_at"]),
            "model": run["model"],
            "views": run["num_views"],
            "accepted": run["num_accepted"],
            "total_s": run["total_s"],
            **{f"{stage}_s": seconds for stage, seconds in run["timings_s"].items() if stage != "total"},
        }
        for run in api().enrollment_runs()
    ]
    return pd.DataFrame(rows)


@st.cache_data(ttl=10)
def _batches(url: str) -> pd.DataFrame:
    points = api().batching()["recent"]
    frame = pd.DataFrame(points, columns=["time", "faces", "kind"])
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    return frame


def _over_time(frame: pd.DataFrame, y: str, color: str, line: bool = True) -> alt.LayerChart | alt.Chart:
    """``y`` over wall-clock time, one colour per value of ``color`` (a category, never a scale).

    Every run is a point (a lone run is visible; a line alone would draw nothing); the time axis
    reads in hours, minutes and seconds whatever the span (Vega's own picks milliseconds for runs
    within one second)."""
    base = alt.Chart(frame).encode(
        x=alt.X("time:T", title="time", axis=alt.Axis(format="%b %d %H:%M:%S", labelAngle=-30, tickCount=6)),
        y=alt.Y(f"{y}:Q", title=y),
        color=alt.Color(f"{color}:N", title=color),
        tooltip=[alt.Tooltip("time:T", format="%Y-%m-%d %H:%M:%S"), alt.Tooltip(f"{color}:N"), alt.Tooltip(f"{y}:Q")],
    )
    points = base.mark_point(filled=True, size=40)
    return base.mark_line() + points if line else points


def _in_range(frame: pd.DataFrame, start: object, end: object) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[(frame["time"].dt.date >= start) & (frame["time"].dt.date <= end)]


st.title("Latency")
try:
    generation = _generation_runs(api().base_url)
    frame, enrollments, batches = _runs(generation), _enrollments(api().base_url), _batches(api().base_url)
except ApiError as exc:
    st.error(plain(exc.friendly()))
    st.stop()
if frame.empty and enrollments.empty:
    st.info("No enrollment yet: enroll someone (with augmentation to see generation).")
    st.stop()
times = pd.concat([f["time"] for f in (frame, enrollments) if not f.empty])
first, last = times.min().date(), times.max().date()
picked = st.date_input("Dates", (first, last))
dates = list(picked) if isinstance(picked, tuple | list) else [picked]
start, end = (dates[0], dates[-1]) if dates else (first, last)  # a range being picked has one date

st.subheader("Enrollment, end to end")
enrolled = _in_range(enrollments, start, end)
if enrolled.empty:
    st.info("No enrollment in these dates.")
else:
    st.altair_chart(_over_time(enrolled, "total_s", "views"), use_container_width=True)
    stages = [c for c in enrolled.columns if c.endswith("_s") and c != "total_s"]
    medians = enrolled.groupby("views")[stages].median()
    st.bar_chart(medians, stack=True)
    st.caption("median seconds per stage, by number of views asked for")
    st.dataframe(medians.round(3), use_container_width=True)
    st.download_button("Download CSV", enrolled.to_csv(index=False), "enrollment_latency.csv", "text/csv")

st.subheader("Embedder batch sizes")
batched = _in_range(batches, start, end)
if batched.empty:
    st.info("No embedding batch recorded since the Embedder replica started.")
else:
    st.altair_chart(_over_time(batched, "faces", "kind", line=False), use_container_width=True)
    st.caption(f"{len(batched)} batch(es), mean {batched['faces'].mean():.1f} faces, max {batched['faces'].max()}")

st.subheader("Generation, per view")
shown = _in_range(frame, start, end)
if shown.empty:
    st.info("No generated view in these dates: enroll someone with augmentation.")
else:
    st.altair_chart(_over_time(shown, "latency_s", "view"), use_container_width=True)
    summary = (
        shown.groupby(["generator", "device", "steps", "views"], dropna=False)["latency_s"]
        .quantile([0.5, 0.95])
        .unstack()
        .rename(columns={0.5: "p50_s", 0.95: "p95_s"})
        .reset_index()
    )
    st.dataframe(summary, hide_index=True)
    st.download_button("Download CSV", shown.to_csv(index=False), "generation_latency.csv", "text/csv")

st.subheader("Generation, by stage")
staged = _in_range(_stages(generation), start, end)
if staged.empty:
    st.info("No stage timings in these dates: Stable Diffusion records them, the classic generator has none.")
else:
    seconds = staged.pivot_table(index="group", columns="stage", values="seconds", aggfunc="median")
    st.bar_chart(seconds[[s for s in STAGES if s in seconds.columns]], stack=True, horizontal=True)
    st.caption("median seconds per stage of one generator call (all views in one batch), by device and views")
    peaks = staged.pivot_table(index="group", columns="stage", values="peak_gb", aggfunc="max")
    st.dataframe(peaks[[s for s in STAGES if s in peaks.columns]].round(2), use_container_width=True)
    st.caption("highest GPU memory peak per stage, GB (CUDA only)")
