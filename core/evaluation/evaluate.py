"""``core eval`` and ``core calibrate`` on a labelled folder."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.evaluation.crossval import CrossValReport, cross_validate, format_crossval
from core.evaluation.dataset import LabelledFolder
from core.evaluation.embedding import EmbeddingCache, PhotoEmbedding, embed_photos
from core.evaluation.eval_data import EvalData
from core.evaluation.metrics import fnir_at, fpir_at, open_set_report, rank1, threshold_for_fpir
from core.evaluation.nested import MIN_IDENTITIES, NestedReport, format_nested, nested_selection
from core.evaluation.protocol import GalleryVectors, ProbeVectors, closed_set, open_set
from core.search.rules import RULES
from core.settings import MatchMode, Settings

POSE_VIEWS = ("left", "right", "up", "down")
EXPRESSION_VIEWS = ("smiling", "serious")
PHOTOMETRIC_VIEWS = ("bright", "dark", "blur", "lowres", "mirror")  # same face, other capture

log = logging.getLogger(__name__)

FPIRS = (0.01, 0.1)


@dataclass(frozen=True)
class ConditionReport:
    rank1: float
    fnir_at_fpir: dict[str, float]
    threshold_at_fpir: dict[str, float]
    stored_threshold: float | None
    fnir_at_stored: float | None
    fpir_at_stored: float | None
    n_closed_set: int
    n_mated: int
    n_impostor: int
    gallery_size: int


@dataclass(frozen=True)
class EvalReport:
    dataset: str
    model: str
    detector: str
    match_mode: str
    n_identities: int
    n_photos: int
    detection_failures: list[str]
    enrollment_failures: list[str]
    conditions: dict[str, ConditionReport]
    embed_seconds: float
    total_seconds: float
    workers: int
    extra: dict[str, object] = field(default_factory=dict)
    crossval: CrossValReport | None = None
    nested: NestedReport | None = None

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "nested": self.nested.to_json() if self.nested else None}


@dataclass(frozen=True, eq=False)
class EmbeddedFolder:
    folder: LabelledFolder
    records: dict[Path, PhotoEmbedding]
    seconds: float
    workers: int

    @property
    def identities(self) -> list[str]:
        return [i.name for i in self.folder.identities]

    def original_gallery(self) -> GalleryVectors:
        gallery = {}
        for identity in self.folder.identities:
            vector = self.records[identity.enrollment].vector
            if vector is not None:
                gallery[identity.name] = vector[None, :]
        return gallery

    def augmented_gallery(self, generator: str, views: tuple[str, ...] | None = None) -> GalleryVectors:
        """The original plus the views of ``generator`` (all made, or ``views``) that passed the gate."""
        gallery = {}
        for identity in self.folder.identities:
            record = self.records[identity.enrollment]
            if record.vector is None:
                continue
            accepted = [
                v.vector
                for v in (record.views or {}).get(generator, [])
                if v.accepted and v.vector is not None and (views is None or v.view in views)
            ]
            gallery[identity.name] = np.stack([record.vector, *accepted])
        return gallery

    def eval_data(self) -> EvalData:
        """The vectors for cross-validation; identities whose first photo shows no face are left out."""
        kept = [i for i in self.folder.identities if self.records[i.enrollment].vector is not None]
        views: list[dict[str, np.ndarray]] = []
        for identity in kept:
            record = self.records[identity.enrollment]
            views.append(
                {
                    f"{generator}:{v.view}": v.vector
                    for generator, made in (record.views or {}).items()
                    for v in made
                    if v.accepted and v.vector is not None
                }
            )
        originals = [self.records[i.enrollment].vector for i in kept]
        dim = int(originals[0].shape[0])  # type: ignore[union-attr]
        probe_identity, probe_vectors, found = [], [], []
        for index, identity in enumerate(kept):
            for path in identity.probes:
                vector = self.records[path].vector
                probe_identity.append(index)
                probe_vectors.append(np.zeros(dim, np.float32) if vector is None else vector)
                found.append(vector is not None)
        return EvalData(
            identities=[i.name for i in kept],
            originals=np.stack(originals),  # type: ignore[arg-type]
            views=views,
            probe_identity=np.array(probe_identity, dtype=np.int64),
            probe_vectors=np.stack(probe_vectors).astype(np.float32),
            probe_found=np.array(found, dtype=bool),
        )

    def view_stats(self, generator: str) -> dict[str, dict[str, float]]:
        """Per view: acceptance rate and mean similarity of accepted views to the source."""
        per_view: dict[str, list[tuple[bool, float | None]]] = {}
        for record in self.records.values():
            for made in (record.views or {}).get(generator, []):
                per_view.setdefault(made.view, []).append((made.accepted, made.similarity))
        stats: dict[str, dict[str, float]] = {}
        for view, outcomes in per_view.items():
            accepted = [s for ok, s in outcomes if ok and s is not None]
            stats[view] = {
                "generated": len(outcomes),
                "acceptance_rate": round(len(accepted) / len(outcomes), 4),
                "mean_similarity_accepted": round(float(np.mean(accepted)), 4) if accepted else float("nan"),
            }
        return stats

    def probes(self) -> ProbeVectors:
        return {i.name: [self.records[p].vector for p in i.probes] for i in self.folder.identities}


def embed_folder(
    settings: Settings,
    folder: LabelledFolder,
    workers: int | None = None,
    generators: tuple[str, ...] = (),
    gate_threshold: float = 1.0,
    cache_dir: Path | None = None,
) -> EmbeddedFolder:
    enrollment = frozenset(i.enrollment for i in folder.identities) if generators else frozenset()
    cache = EmbeddingCache(cache_dir, settings, generators, gate_threshold) if cache_dir else None
    records, timings = embed_photos(
        settings, folder.all_images(), workers, enrollment, generators, gate_threshold, cache
    )
    return EmbeddedFolder(folder, records, timings.seconds, timings.workers)


def evaluate_condition(
    gallery: GalleryVectors,
    probes: ProbeVectors,
    identities: list[str],
    mode: MatchMode,
    stored_threshold: float | None,
) -> ConditionReport:
    closed = closed_set(gallery, probes, identities, mode)
    searches = open_set(gallery, probes, identities, mode)
    report = open_set_report(searches.mated, searches.impostor, FPIRS)
    return ConditionReport(
        rank1=rank1(closed),
        fnir_at_fpir=report.fnir_at_fpir,
        threshold_at_fpir=report.threshold_at_fpir,
        stored_threshold=stored_threshold,
        fnir_at_stored=None if stored_threshold is None else fnir_at(searches.mated, stored_threshold),
        fpir_at_stored=None if stored_threshold is None else fpir_at(searches.impostor, stored_threshold),
        n_closed_set=len(closed),
        n_mated=report.n_mated,
        n_impostor=report.n_impostor,
        gallery_size=int(sum(len(v) for v in gallery.values())),
    )


def run_eval(
    settings: Settings,
    embedded: EmbeddedFolder,
    model: str,
    detector: str,
    stored_threshold: float | None,
    rule: MatchMode,
    default_views: dict[str, tuple[str, ...]] | None = None,
    all_views: dict[str, tuple[str, ...]] | None = None,
    seeds: int = 10,
    unseen_repeats: int = 20,
) -> EvalReport:
    """One column per condition: original only, then + each generator's default views under
    every matching rule (each re-calibrated at the same FPIR), and the cross-validated study of
    rules and view sets (core/evaluation/crossval.py), and that study's choice checked on unseen
    people (core/evaluation/nested.py; ``unseen_repeats=0`` skips it)."""
    default_views = default_views or {}
    all_views = all_views or {}
    generators = tuple(default_views)
    started = time.perf_counter()
    identities = embedded.identities
    probes = embedded.probes()
    mode = rule  # the service's: the match_mode setting, else the model's chosen rule
    reports = {"original": evaluate_condition(embedded.original_gallery(), probes, identities, mode, stored_threshold)}
    for generator, views in default_views.items():
        gallery = embedded.augmented_gallery(generator, views)
        for rule in (mode, *(r for r in RULES if r != mode)):  # every matching rule, the configured first
            reports[f"+{generator} ({rule})"] = evaluate_condition(gallery, probes, identities, rule, None)
    conditions = view_conditions(default_views, all_views)
    data = embedded.eval_data()
    crossval = cross_validate(data, conditions, seeds=seeds)
    ordered = (mode, *(r for r in RULES if r != mode))
    nested = nested_selection(data, conditions, ordered, unseen_repeats) if unseen_repeats and generators else None
    extra: dict[str, object] = {"views": {g: embedded.view_stats(g) for g in generators}} if generators else {}
    if unseen_repeats and generators and nested is None:
        extra["nested_skipped"] = f"{len(data.identities)} identities, at least {MIN_IDENTITIES} needed"
    failures = sorted(
        str(r.path.relative_to(embedded.folder.root)) for r in embedded.records.values() if r.vector is None
    )
    enroll_failures = [i.name for i in embedded.folder.identities if embedded.records[i.enrollment].vector is None]
    return EvalReport(
        dataset=str(embedded.folder.root),
        model=model,
        detector=detector,
        match_mode=mode,
        n_identities=len(identities),
        n_photos=embedded.folder.num_images,
        detection_failures=failures,
        enrollment_failures=enroll_failures,
        conditions=reports,
        embed_seconds=round(embedded.seconds, 2),
        total_seconds=round(embedded.seconds + time.perf_counter() - started, 2),
        workers=embedded.workers,
        extra=extra,
        crossval=crossval,
        nested=nested,
    )


def view_conditions(
    default_views: dict[str, tuple[str, ...]], all_views: dict[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...] | None]:
    """original; each generator's default views; then by kind: pose only, pose + expression,
    photometric only (the same face under other light, blur, resolution, mirrored), every view."""
    out: dict[str, tuple[str, ...] | None] = {"original": None}
    for generator, views in default_views.items():
        out[f"+{generator} default ({len(views)})"] = tuple(f"{generator}:{v}" for v in views)
    for generator, views in all_views.items():
        pose = tuple(v for v in views if v in POSE_VIEWS)
        subsets = {
            "pose": pose,
            "pose+expression": pose + tuple(v for v in views if v in EXPRESSION_VIEWS),
            "photometric": tuple(v for v in views if v in PHOTOMETRIC_VIEWS),
            "all": views,
        }
        seen = {frozenset(default_views.get(generator, ()))}
        for label, subset in subsets.items():
            if subset and frozenset(subset) not in seen:
                seen.add(frozenset(subset))
                out[f"+{generator} {label} ({len(subset)})"] = tuple(f"{generator}:{v}" for v in subset)
    return out


def calibrate_gate_threshold(embedded: EmbeddedFolder, target_fmr: float) -> tuple[float, int]:
    """Identity-gate threshold: the similarity at most ``target_fmr`` of impostor pairs reach."""
    names, vectors = [], []
    for identity in embedded.folder.identities:
        for path in (identity.enrollment, *identity.probes):
            vector = embedded.records[path].vector
            if vector is not None:
                names.append(identity.name)
                vectors.append(vector)
    matrix = np.stack(vectors)
    labels = np.array(names)
    upper = np.triu_indices(len(names), 1)
    impostor = (matrix @ matrix.T)[upper][labels[upper[0]] != labels[upper[1]]]
    return threshold_for_fpir(impostor, target_fmr), int(impostor.size)


def _pct(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}%"


def format_table(report: EvalReport) -> str:
    names = list(report.conditions)
    rows: list[tuple[str, list[str]]] = []
    get = report.conditions.__getitem__
    rows.append(("rank-1 (closed set)", [_pct(get(n).rank1) for n in names]))
    for key in (f"{f:g}" for f in FPIRS):
        rows.append((f"FNIR @ FPIR={_pct(float(key))}", [_pct(get(n).fnir_at_fpir[key]) for n in names]))
        rows.append(("  threshold", [f"{get(n).threshold_at_fpir[key]:.4f}" for n in names]))
    rows.append(
        (
            "stored threshold",
            [f"{get(n).stored_threshold:.4f}" if get(n).stored_threshold is not None else "-" for n in names],
        )
    )
    rows.append(("  FNIR at it", [_pct(get(n).fnir_at_stored) for n in names]))
    rows.append(("  FPIR at it", [_pct(get(n).fpir_at_stored) for n in names]))
    rows.append(("gallery embeddings (closed set)", [str(get(n).gallery_size) for n in names]))
    rows.append(("searches mated/impostor", [f"{get(n).n_mated}/{get(n).n_impostor}" for n in names]))
    width = max(len(r[0]) for r in rows) + 2
    col = max(12, *(len(n) + 2 for n in names))
    lines = [
        f"dataset {report.dataset}: {report.n_identities} identities, {report.n_photos} photos; "
        f"model {report.model}, detector {report.detector}, match {report.match_mode}",
        "".ljust(width) + "".join(n.rjust(col) for n in names),
    ]
    lines += [label.ljust(width) + "".join(v.rjust(col) for v in values) for label, values in rows]
    lines.append(
        f"faces not detected: {len(report.detection_failures)} photo(s)"
        + (
            f" ({', '.join(report.detection_failures[:8])}{', ...' if len(report.detection_failures) > 8 else ''})"
            if report.detection_failures
            else ""
        )
        + f"; enrollment photos without a face: {len(report.enrollment_failures)}"
    )
    base = report.conditions["original"].fnir_at_fpir["0.01"]
    for name in names[1:]:
        fnir = report.conditions[name].fnir_at_fpir["0.01"]
        lines.append(
            f"{name} vs original at FPIR=1% (each re-calibrated): FNIR {_pct(base)} -> {_pct(fnir)} "
            f"({100 * (fnir - base):+.1f} points)"
        )
    view_reports: dict[str, dict[str, dict[str, float]]] = report.extra.get("views", {})  # type: ignore[assignment]
    for generator, views in view_reports.items():
        summary = ", ".join(
            f"{view} {_pct(s['acceptance_rate'])} kept (sim {s['mean_similarity_accepted']:.3f})"
            for view, s in views.items()
        )
        lines.append(f"{generator} views through the gate: {summary}")
    if report.crossval is not None:
        lines += ["", format_crossval(report.crossval)]
    if report.nested is not None or "nested_skipped" in report.extra:
        lines += ["", format_nested(report.nested)]
    embedding = (
        f"{report.embed_seconds:.1f} s detecting and embedding on {report.workers} worker(s)"
        if report.workers
        else "every embedding read from the cache"
    )
    lines.append(f"time: {report.total_seconds:.1f} s ({embedding})")
    return "\n".join(lines)
