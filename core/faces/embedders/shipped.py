"""What a model ships calibrated with: thresholds, views offsets, and the rule and views the
cross-validated study chose for it. A store's own calibration (``manyangles calibrate``)
overrides each value; a model with nothing shipped (an insightface pack) must be calibrated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# The targets shipped values are calibrated at: identification at FPIR 1% (and 10% where
# ``identify`` has it), the identity gate and one-to-one decisions at FMR 0.1%.
SHIPPED_FPIR = 0.01
SHIPPED_FMR = 0.001
# the key of a one-to-one threshold between two photos (no person, so no matching rule): the
# identity gate's, and verify's when a person has one photo
PHOTOS = "photos"


@dataclass(frozen=True)
class Shipped:
    # target FPIR -> matching rule -> identification threshold
    identify: Mapping[float, Mapping[str, float]] = field(default_factory=dict)
    # target FPIR -> matching rule -> share of impostor (search, person) pairs at or over that threshold
    person_fmrs: Mapping[float, Mapping[str, float]] = field(default_factory=dict)
    fmr_pairs: int = 0  # the impostor pairs those rates were measured over (0: unknown)
    views_offsets: Mapping[str, float] = field(default_factory=dict)  # matching rule -> offset ({}: 0)
    gate: float | None = None  # identity gate of generated views at FMR 0.1%
    verify: Mapping[str, float] = field(default_factory=dict)  # one to one at FMR 0.1%: rule or "photos"
    match_mode: str = "top2"  # the matching rule the views study chose for this model
    views: tuple[str, ...] | None = None  # the classic views it chose (None: the generator's own default)
    dataset: str = ""  # what it was calibrated on

    def identify_at(self, target: float) -> Mapping[str, float]:
        """Rule -> threshold at ``target`` FPIR ({}: none shipped at that target)."""
        return next((v for t, v in self.identify.items() if abs(t - target) < 1e-12), {})

    def person_fmrs_at(self, target: float) -> Mapping[str, float]:
        return next((v for t, v in self.person_fmrs.items() if abs(t - target) < 1e-12), {})


UNCALIBRATED = Shipped()
