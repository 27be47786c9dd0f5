"""What ArcFace MobileFaceNet (w600k, the default model) ships calibrated with.

Every value comes from ``manyangles calibrate ../shared/faces`` (132 identities, 620 photos, SCRFD
at the default ``det_size`` / ``min_face_px``; 2026-12-07, BENCHMARKS.md "ArcFace by default"),
rounded up in the 4th decimal. The matching rule and the views are the cross-validated study's
choice for this model (``manyangles eval``: not worse than original-only on average, the
fewest folds worse, then the lowest FNIR at FPIR 1%): the 5 photometric classic views under
``max``. At this accuracy no view set helps by more than the noise (original only 1.4%
[0.0-3.4] FNIR at FPIR 1%, the choice 1.1% [0.0-2.7]; on unseen halves -0.03 points): the
choice is held to "does not hurt". A store's own calibration overrides each value.
"""

from __future__ import annotations

from core.embedders.shipped import SHIPPED_FPIR, Shipped
from core.matching_rules import PHOTOS

ARCFACE_VIEWS = ("bright", "dark", "blur", "lowres", "mirror")
# Identification at FPIR 1% and 10% per matching rule: 488 impostor searches against galleries of
# 66 persons, every other person enrolled with ARCFACE_VIEWS (views offset applied).
ARCFACE_THRESHOLDS = {
    SHIPPED_FPIR: {"max": 0.2631, "mean": 0.2672, "blend": 0.2625, "top2": 0.2638},
    0.1: {"max": 0.2198, "mean": 0.2207, "blend": 0.2193, "top2": 0.2185},
}
# The share of the 63,928 impostor (search, person) pairs at or over each threshold: at 1%, 13 /
# 10 / 13 / 11 pairs; at 10%, 104 / 98 / 102 / 107 (core/gallery_fpir.py: FPIR 1% holds up to
# ~50-65 persons at the 1% thresholds).
ARCFACE_PERSON_FMRS = {
    SHIPPED_FPIR: {"max": 2.03e-4, "mean": 1.56e-4, "blend": 2.03e-4, "top2": 1.72e-4},
    0.1: {"max": 1.63e-3, "mean": 1.53e-3, "blend": 1.60e-3, "top2": 1.67e-3},
}
ARCFACE_FMR_PAIRS = 63_928
# How far the top 0.1% of impostor scores rises when the same persons are enrolled with the views
# (32,208 pairs); negative under mean and blend: there the views pull a template away from strangers.
ARCFACE_VIEWS_OFFSETS = {"max": 0.0123, "mean": -0.0016, "blend": -0.0013, "top2": 0.0098}
# The identity gate and two photos one to one: the cosine 0.1% of the 190,718 impostor photo pairs reach.
ARCFACE_GATE = 0.2288
# A photo against a person at FMR 0.1%, per rule (63,928 impostor claims, views offset applied).
ARCFACE_VERIFY = {"max": 0.2320, "mean": 0.2319, "blend": 0.2319, "top2": 0.2320, PHOTOS: ARCFACE_GATE}

ARCFACE_SHIPPED = Shipped(
    identify=ARCFACE_THRESHOLDS,
    person_fmrs=ARCFACE_PERSON_FMRS,
    fmr_pairs=ARCFACE_FMR_PAIRS,
    views_offsets=ARCFACE_VIEWS_OFFSETS,
    gate=ARCFACE_GATE,
    verify=ARCFACE_VERIFY,
    match_mode="max",
    views=ARCFACE_VIEWS,
    dataset="../shared/faces (132 identities, 620 photos)",
)
