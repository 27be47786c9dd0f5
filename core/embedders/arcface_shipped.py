"""What ArcFace MobileFaceNet (w600k, the default model) ships calibrated with.

Every value comes from ``manyangles calibrate ../shared/faces`` (132 identities, 620 photos, SCRFD
at the default ``det_size`` / ``min_face_px``, the classic views' 68 points from dlib's predictor
on SCRFD's box; 2026-12-07, BENCHMARKS.md "ArcFace by default"), rounded up in the 4th decimal.
The matching rule and the views are the cross-validated study's pick for this model (``manyangles
eval``: not worse than original-only on average, the fewest folds worse, then the lowest FNIR at
FPIR 1%): all 10 classic views under ``blend``. At this accuracy no view set helps by more than
the noise (original only 1.4% [0.0-3.4] FNIR at FPIR 1%, the pick 1.2% [0.0-3.0]; on unseen
halves -0.08 points, worse in none of 20): the pick is held to "does not hurt", and it moved
with each change of how the views are drawn (BENCHMARKS.md). A store's own calibration overrides
each value.
"""

from __future__ import annotations

from core.embedders.shipped import SHIPPED_FPIR, Shipped
from core.matching_rules import PHOTOS

# Identification at FPIR 1% and 10% per matching rule: 488 impostor searches against galleries of
# 66 persons, every other person enrolled with the 10 classic views (views offset applied).
ARCFACE_THRESHOLDS = {
    SHIPPED_FPIR: {"max": 0.2604, "mean": 0.2690, "blend": 0.2626, "top2": 0.2604},
    0.1: {"max": 0.2216, "mean": 0.2190, "blend": 0.2185, "top2": 0.2209},
}
# The share of the 63,928 impostor (search, person) pairs at or over each threshold: at 1%, 18 /
# 10 / 14 / 15 pairs; at 10%, 98 / 104 / 104 / 104 (core/gallery_fpir.py: FPIR 1% holds up to
# ~45 persons at the blend threshold).
ARCFACE_PERSON_FMRS = {
    SHIPPED_FPIR: {"max": 2.82e-4, "mean": 1.56e-4, "blend": 2.19e-4, "top2": 2.35e-4},
    0.1: {"max": 1.53e-3, "mean": 1.63e-3, "blend": 1.63e-3, "top2": 1.63e-3},
}
ARCFACE_FMR_PAIRS = 63_928
# How far the top 0.1% of impostor scores rises when the same persons are enrolled with the views
# (32,208 pairs); about nothing under blend and mean (a template of the views stays as far from
# strangers as the photo is), most under max (ten more chances).
ARCFACE_VIEWS_OFFSETS = {"max": 0.0262, "mean": -0.0013, "blend": -0.0005, "top2": 0.0173}
# The identity gate and two photos one to one: the cosine 0.1% of the 190,718 impostor photo pairs reach.
ARCFACE_GATE = 0.2288
# A photo against a person at FMR 0.1%, per rule (63,928 impostor claims, views offset applied).
ARCFACE_VERIFY = {"max": 0.2319, "mean": 0.2312, "blend": 0.2314, "top2": 0.2317, PHOTOS: ARCFACE_GATE}

ARCFACE_SHIPPED = Shipped(
    identify=ARCFACE_THRESHOLDS,
    person_fmrs=ARCFACE_PERSON_FMRS,
    fmr_pairs=ARCFACE_FMR_PAIRS,
    views_offsets=ARCFACE_VIEWS_OFFSETS,
    gate=ARCFACE_GATE,
    verify=ARCFACE_VERIFY,
    match_mode="blend",
    views=None,  # all 10 classic views: the classic generator's own default
    dataset="../shared/faces (132 identities, 620 photos)",
)
