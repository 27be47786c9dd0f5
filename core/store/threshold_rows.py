"""The calibrated thresholds table: per model, kind (``fpir``, ``gate_fmr``, ``views_offset``),
matching rule and target (``manyangles calibrate`` writes them; core/search/thresholds.py resolves them).

Mixed into GalleryStore, which provides the connections.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from core.store.db import Connection
from core.store.records import ModelThresholds, StoredThreshold

THRESHOLD_COLUMNS = (
    "model, kind, rule, target, threshold, n_negative, dataset, created_at, person_fmr, gallery_size, fmr_pairs"
)


class ThresholdRows:
    def _connect(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def set_threshold(self, value: StoredThreshold) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO thresholds(model, kind, rule, target, threshold, n_negative, "
                "dataset, created_at, person_fmr, gallery_size, fmr_pairs) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (model, kind, rule, target) DO UPDATE SET threshold = excluded.threshold, "
                "n_negative = excluded.n_negative, dataset = excluded.dataset, created_at = excluded.created_at, "
                "person_fmr = excluded.person_fmr, gallery_size = excluded.gallery_size, "
                "fmr_pairs = excluded.fmr_pairs",
                (
                    value.model,
                    value.kind,
                    value.rule,
                    value.target,
                    value.threshold,
                    value.n_negative,
                    value.dataset,
                    value.created_at,
                    value.person_fmr,
                    value.gallery_size,
                    value.fmr_pairs,
                ),
            )

    def get_threshold(self, model: str, kind: str, target: float, rule: str = "") -> StoredThreshold | None:
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT {THRESHOLD_COLUMNS} FROM thresholds "
                "WHERE model = ? AND kind = ? AND rule = ? AND abs(target - ?) < 1e-12",
                (model, kind, rule, target),
            ).fetchone()
        return StoredThreshold(*row) if row else None

    def model_thresholds(self, model: str) -> ModelThresholds:
        """Every calibration of ``model`` and the active model's name, in one statement (two
        in a gallery with no active model yet)."""
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT m.name, {', '.join(f't.{c}' for c in THRESHOLD_COLUMNS.split(', '))} FROM models AS m "
                "LEFT JOIN thresholds AS t ON t.model = ? WHERE m.status = 'active'",
                (model,),
            ).fetchall()
            if not rows:
                rows = [
                    (None, *r)
                    for r in conn.execute(f"SELECT {THRESHOLD_COLUMNS} FROM thresholds WHERE model = ?", (model,))
                ]
        active = rows[0][0] if rows else None
        return ModelThresholds(model, active, tuple(StoredThreshold(*r[1:]) for r in rows if r[1] is not None))

    def thresholds(self) -> list[StoredThreshold]:
        """Every stored (calibrated) threshold."""
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {THRESHOLD_COLUMNS} FROM thresholds ORDER BY model, kind, rule, target"
            ).fetchall()
        return [StoredThreshold(*row) for row in rows]
