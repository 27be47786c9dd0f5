"""What ArcFace MobileFaceNet (w600k, the default model) ships calibrated with.

Every value comes from ``manyangles calibrate ../shared/faces`` (132 identities, 620 photos, SCRFD
at the default ``det_size`` / ``min_face_px``; 2026-12-07, BENCHMARKS.md "ArcFace by default"),
rounded up in the 4th decimal. The matching rule and the views are the cross-validated study's
pick for this model (``manyangles eval``: not worse than original-only on average, the fewest
folds worse, then the lowest FNIR at FPIR 1%): the 4 classic pose views under ``blend``. At this
accuracy no view set helps by more than the noise (original only 1.4% [0.0-3.4] FNIR at FPIR 1%,
the pick 1.1% [0.0-2.7]; picked on one half of the identities, worth +0.00 points on the other):
the pick is held to "does not hurt", and another run of the study with the views detected
otherwise picked the photometric views under ``max`` (BENCHMARKS.md). A store's own calibration
overrides each value.
"""

from __future__ import annotations

from core.embedders.shipped import SHIPPED_FPIR, Shipped
from core.matching_rules import PHOTOS

ARCFACE_VIEWS = ("left", "right", "up", "down")
# Identification at FPIR 1% and 10% per matching rule: 488 impostor searches against galleries of
# 66 persons, every other person enrolled with ARCFACE_VIEWS (views offset applied).
ARCFACE_THRESHOLDS = {
    SHIPPED_FPIR: {"max": 0.2761, "mean": 0.2742, "blend": 0.2712, "top2": 0.2708},
    0.1: {"max": 0.2202, "mean": 0.2227, "blend": 0.2206, "top2": 0.2207},
}
# The share of the 63,928 impostor (search, person) pairs at or over each threshold: at 1%, 6 /
# 7 / 11 / 10 pairs; at 10%, 100 / 96 / 102 / 97 (core/gallery_fpir.py: FPIR 1% holds up to
# ~58 persons at the blend threshold).
ARCFACE_PERSON_FMRS = {
    SHIPPED_FPIR: {"max": 9.39e-5, "mean": 1.09e-4, "blend": 1.72e-4, "top2": 1.56e-4},
    0.1: {"max": 1.56e-3, "mean": 1.50e-3, "blend": 1.60e-3, "top2": 1.52e-3},
}
ARCFACE_FMR_PAIRS = 63_928
# How far the top 0.1% of impostor scores rises when the same persons are enrolled with the views
# (32,208 pairs); negative under mean and blend: there the pose views pull a template away from
# strangers (and from the person), so persons with views get the difference back.
ARCFACE_VIEWS_OFFSETS = {"max": 0.0279, "mean": -0.0081, "blend": -0.0114, "top2": 0.0057}
# The identity gate and two photos one to one: the cosine 0.1% of the 190,718 impostor photo pairs reach.
ARCFACE_GATE = 0.2288
# A photo against a person at FMR 0.1%, per rule (63,928 impostor claims, views offset applied).
ARCFACE_VERIFY = {"max": 0.2319, "mean": 0.2320, "blend": 0.2315, "top2": 0.2320, PHOTOS: ARCFACE_GATE}

ARCFACE_SHIPPED = Shipped(
    identify=ARCFACE_THRESHOLDS,
    person_fmrs=ARCFACE_PERSON_FMRS,
    fmr_pairs=ARCFACE_FMR_PAIRS,
    views_offsets=ARCFACE_VIEWS_OFFSETS,
    gate=ARCFACE_GATE,
    verify=ARCFACE_VERIFY,
    match_mode="blend",
    views=ARCFACE_VIEWS,
    dataset="../shared/faces (132 identities, 620 photos)",
)
