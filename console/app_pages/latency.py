"""Generation latency: per view over time, p50/p95 by generator, device, steps and view count."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from console.client import ApiError
from console.config import api


@st.cache_data(ttl=10)
def _runs(url: str) -> pd.DataFrame:
    rows = []
    for run in api().generation_runs():
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


st.title("Generation latency")
try:
    frame = _runs(api().base_url)
except ApiError as exc:
    st.error(exc.friendly())
    st.stop()
if frame.empty:
    st.info("No generation yet: enroll someone with augmentation.")
    st.stop()
first, last = frame["time"].min().date(), frame["time"].max().date()
picked = st.date_input("Dates", (first, last))
dates = list(picked) if isinstance(picked, tuple | list) else [picked]
start, end = (dates[0], dates[-1]) if dates else (first, last)  # a range being picked has one date
shown = frame[(frame["time"].dt.date >= start) & (frame["time"].dt.date <= end)]
st.line_chart(shown, x="time", y="latency_s", color="view")
summary = (
    shown.groupby(["generator", "device", "steps", "views"], dropna=False)["latency_s"]
    .quantile([0.5, 0.95])
    .unstack()
    .rename(columns={0.5: "p50_s", 0.95: "p95_s"})
    .reset_index()
)
st.dataframe(summary, hide_index=True)
st.download_button("Download CSV", shown.to_csv(index=False), "generation_latency.csv", "text/csv")
