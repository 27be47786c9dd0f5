"""How long an enrollment will take, from the service's record of recent ones."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any


def enrollment_eta(views: int, runs: Iterable[Mapping[str, Any]]) -> float | None:
    """The median end-to-end seconds of recent enrollments that asked for the same number of
    views (``GET /v1/stats/enrollments`` rows), else of those that asked for any views when some
    are asked for now (scaled by the view count), else None: nothing comparable was recorded."""
    runs = list(runs)
    same = [float(r["total_s"]) for r in runs if int(r["num_views"]) == views]
    if same:
        return statistics.median(same)
    if views:
        scaled = [float(r["total_s"]) * (1 + views) / (1 + int(r["num_views"])) for r in runs if r["num_views"]]
        if scaled:
            return statistics.median(scaled)
    return None


def describe_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return (
        ", under a second"
        if seconds < 1.0
        else f", about {seconds:.0f} s"
        if seconds >= 10
        else f", about {seconds:.1f} s"
    )
