"""What ArcFace MobileFaceNet (w600k, the default model) ships calibrated with.

Every value comes from ``manyangles calibrate ../shared/faces`` (132 identities, 620 photos, SCRFD
at the default ``det_size`` / ``min_face_px``, the classic views' 68 points from dlib's predictor
on SCRFD's box, warped by the seam-free spline; 2026-12-07, docs/studies/arcface.md
and "The views study on the new warps"), rounded up in the 4th decimal. The matching rule and the
views: all 10 classic views under ``blend``, the cross-validated study's pick on the views as they
were drawn before the seam-free warp, and still the one the 20 unseen halves pick most often
(``manyangles eval``). At this accuracy no view set helps by more than the noise (original only
1.4% [0.0-3.4] FNIR at FPIR 1%, all 10 / blend 1.3% [0.0-3.2]; on unseen halves -0.07 points,
worse in none of 20): the default is held to "does not hurt", and the study's own rule moves with
each change of how the views are drawn (it now names pose + smiling / blend, 1.3%, worse on 5 of
the 20 unseen halves: docs/studies/arcface.md). A store's own calibration overrides each value.
"""

from __future__ import annotations

from core.faces.embedders.shipped import PHOTOS, SHIPPED_FPIR, Shipped

# Identification at FPIR 1% and 10% per matching rule: 488 impostor searches against galleries of
# 66 persons, every other person enrolled with the 10 classic views (views offset applied).
ARCFACE_THRESHOLDS = {
    SHIPPED_FPIR: {"max": 0.2640, "mean": 0.2654, "blend": 0.2622, "top2": 0.2639},
    0.1: {"max": 0.2221, "mean": 0.2185, "blend": 0.2185, "top2": 0.2216},
}
# The share of the 63,928 impostor (search, person) pairs at or over each threshold: at 1%, 13 /
# 11 / 13 / 13 pairs; at 10%, 96 / 100 / 103 / 93 (core/search/fpir.py: FPIR 1% holds up to
# ~49 persons at the blend threshold).
ARCFACE_PERSON_FMRS = {
    SHIPPED_FPIR: {"max": 2.03e-4, "mean": 1.72e-4, "blend": 2.03e-4, "top2": 2.03e-4},
    0.1: {"max": 1.50e-3, "mean": 1.56e-3, "blend": 1.61e-3, "top2": 1.45e-3},
}
ARCFACE_FMR_PAIRS = 63_928
# How far the top 0.1% of impostor scores rises when the same persons are enrolled with the views
# (32,208 pairs); about nothing under blend and mean (a template of the views stays as far from
# strangers as the photo is), most under max (ten more chances).
ARCFACE_VIEWS_OFFSETS = {"max": 0.0262, "mean": 0.0014, "blend": -0.0005, "top2": 0.0168}
# The identity gate and two photos one to one: the cosine 0.1% of the 190,718 impostor photo pairs reach.
ARCFACE_GATE = 0.2288
# A photo against a person at FMR 0.1%, per rule (63,928 impostor claims, views offset applied).
ARCFACE_VERIFY = {"max": 0.2312, "mean": 0.2307, "blend": 0.2309, "top2": 0.2319, PHOTOS: ARCFACE_GATE}

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
