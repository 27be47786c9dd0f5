"""``manyangles eval``: the models and rules measured on a labelled folder; ``calibrate``: the
thresholds measured there, stored for the active model."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from core.cli.flags import count
from core.cli.registry import command, out
from core.errors import InvalidInput, NotCalibrated
from core.evaluation.calibration import (
    RuleCalibration,
    calibrate_rules,
    calibrate_verify,
    calibrate_views_offsets,
)
from core.evaluation.dataset import LabelledFolder, load_labelled_folder
from core.evaluation.eval_data import EvalData
from core.evaluation.evaluate import (
    EmbeddedFolder,
    calibrate_gate_threshold,
    embed_folder,
    format_table,
    run_eval,
)
from core.faces.embedders.shipped import PHOTOS
from core.faces.pipeline import ModelInfo
from core.search.rules import VIEWS_OFFSET_TAIL
from core.service import ManyAnglesService
from core.settings import Settings
from core.store.access_log import log_command
from core.store.db import safe_url
from core.store.records import StoredThreshold
from core.store.sqlutil import utc_now


def _folder_arguments(parser: argparse.ArgumentParser) -> None:
    """The labelled folder and how it is embedded (eval, calibrate)."""
    parser.add_argument("dir", type=Path)
    parser.add_argument("--workers", type=count(), default=None, help="processes (default: all cores)")
    parser.add_argument("--no-views", action="store_true", help="original only: skip generated views")
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep embeddings here between runs (keyed by photo and models)"
    )


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    _folder_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("eval.json"), help="JSON report path")
    parser.add_argument("--seeds", type=int, default=10, help="random identity splits of the cross-validation")
    parser.add_argument(
        "--unseen-repeats",
        type=int,
        default=20,
        help="nested check: select on half the identities, measure on the other half, this many times (0: skip)",
    )


def _calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    _folder_arguments(parser)
    parser.add_argument(
        "--target-fpir",
        dest="calibrate_fpir",
        type=float,
        default=None,
        help="default: the target_fpir setting",
    )
    parser.add_argument(
        "--gallery-size",
        type=count(1),
        default=None,
        help="persons the target FPIR must hold for (default: half the folder's identities); "
        "a larger gallery needs a higher threshold, and a folder with enough impostor pairs to measure it",
    )


@command("eval", "evaluate on <identity>/<n>.jpg", _eval_arguments)
def eval_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise InvalidInput(f"--seeds must be at least 1, got {args.seeds}")
    if args.unseen_repeats < 0:
        raise InvalidInput(f"--unseen-repeats must be 0 or more, got {args.unseen_repeats}")
    folder = load_labelled_folder(args.dir)
    service = ManyAnglesService.from_settings(settings)
    try:
        threshold: float | None = service.threshold()
    except NotCalibrated:
        threshold = None
    generators = () if args.no_views else ("classic",) + (("sd",) if settings.sd_model else ())
    gate = service.gate_threshold() if generators else 1.0
    # SD runs in one process: one copy of the weights on the GPU (absent weights fail there, clearly)
    workers = 1 if "sd" in generators else args.workers
    embedded = embed_folder(settings, folder, workers, generators, gate, args.cache)
    defaults, every = generator_views(generators, service.model)
    report = run_eval(
        settings,
        embedded,
        service.model.name,
        service.model.detector,
        threshold,
        service.rule(),  # type: ignore[arg-type]
        defaults,
        every,
        seeds=args.seeds,
        unseen_repeats=args.unseen_repeats,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report.to_json(), indent=2))
    out(json.dumps(report.to_json()) if args.json else format_table(report) + f"\nreport written to {args.out}")
    return 0


@dataclass(frozen=True)
class _Calibration:
    """What calibrate measured on the folder: the records it stores, in the order it stores them
    (identification, views offsets, one to one, identity gate), and what its summary line says."""

    model: str
    target: float
    generator: str
    views: tuple[str, ...] | None
    records: list[StoredThreshold]
    gate: float
    gate_pairs: int
    one_to_one: list[StoredThreshold]
    not_calibrated: str | None


def _target_fpir(settings: Settings, args: argparse.Namespace) -> float:
    target: float = args.calibrate_fpir if args.calibrate_fpir is not None else settings.target_fpir
    if not 0.0 < target < 1.0:
        raise InvalidInput(f"--target-fpir must lie strictly between 0 and 1, got {target}")
    return target


def _embed_for_calibration(
    settings: Settings, args: argparse.Namespace, service: ManyAnglesService, folder: LabelledFolder
) -> tuple[str, tuple[str, ...], EmbeddedFolder]:
    """The folder embedded with the views the service makes (Stable Diffusion's when its weights
    are configured, else classic), where the model has an identity gate: views make the gallery a
    real one, and the rules' thresholds depend on it. Returns the generator, the generators used
    (none without a gate or with --no-views) and the embedded folder."""
    try:
        view_gate: float | None = service.gate_threshold()
    except NotCalibrated:
        view_gate = None
    generator = "sd" if settings.sd_model else "classic"
    generators = (generator,) if view_gate is not None and not args.no_views else ()
    # SD runs in one process: one copy of the weights on the GPU
    workers = 1 if generator == "sd" else args.workers
    return generator, generators, embed_folder(settings, folder, workers, generators, view_gate or 1.0, args.cache)


def _identification_records(
    model: str, target: float, rules: dict[str, RuleCalibration], offsets: dict[str, tuple[float, int]], dataset: str
) -> list[StoredThreshold]:
    """Per rule, its threshold at ``target`` FPIR, then its views offset."""
    records = [
        StoredThreshold(
            model,
            "fpir",
            rule,
            target,
            c.threshold,
            c.searches,
            dataset,
            utc_now(),
            c.person_fmr,
            c.gallery_size,
            c.pairs,
        )
        for rule, c in rules.items()
    ]
    return records + [
        StoredThreshold(model, "views_offset", rule, VIEWS_OFFSET_TAIL, offset, n, dataset, utc_now())
        for rule, (offset, n) in offsets.items()
    ]


def _calibrate(
    settings: Settings, args: argparse.Namespace, service: ManyAnglesService, folder: LabelledFolder, target: float
) -> _Calibration:
    """Every threshold measured on ``folder``; nothing is stored yet."""
    model = service.model.name
    generator, generators, embedded = _embed_for_calibration(settings, args, service, folder)
    gate, n_pairs = calibrate_gate_threshold(embedded, settings.gate_fmr)
    defaults, _ = generator_views(generators, service.model)
    views = tuple(f"{generator}:{v}" for v in defaults[generator]) if generators else None
    dataset = str(folder.root)
    data = embedded.eval_data()
    offsets = calibrate_views_offsets(data, views) if views else {}
    shifts = {rule: offset for rule, (offset, _) in offsets.items()}
    rules = calibrate_rules(data, views, target, offsets=shifts, gallery_size=args.gallery_size)
    records = _identification_records(model, target, rules, offsets, dataset)
    one_to_one, not_calibrated = _verify_thresholds(settings, embedded, data, views, shifts, model, dataset)
    records += one_to_one
    records.append(StoredThreshold(model, "gate_fmr", "", settings.gate_fmr, gate, n_pairs, dataset, utc_now()))
    return _Calibration(model, target, generator, views, records, gate, n_pairs, one_to_one, not_calibrated)


def _calibration_text(settings: Settings, args: argparse.Namespace, folder: LabelledFolder, c: _Calibration) -> str:
    """The plain-text answer: every stored threshold, and what it rests on."""
    fpir = [r for r in c.records if r.kind == "fpir"]
    listed = ", ".join(
        f"{r.rule} {r.threshold:.4f} (per-person FMR {r.person_fmr:.1e}: "
        f"{round((r.person_fmr or 0.0) * (r.fmr_pairs or 0)):,} of {r.fmr_pairs or 0:,} pairs)"
        for r in fpir
    )
    size = f"{fpir[0].gallery_size:,} persons" if args.gallery_size else f"galleries of {fpir[0].gallery_size} persons"
    offsets = [r for r in c.records if r.kind == "views_offset"]
    shifted = ", ".join(f"{r.rule} {r.threshold:.4f}" for r in offsets)
    pairs = next((r.n_negative for r in offsets), 0)
    return (
        f"model {c.model}: thresholds at FPIR {c.target:g} for {size} ({c.records[0].n_negative} impostor searches, "
        f"{f'half the gallery with {c.generator} views' if c.views else 'originals only'}): {listed}; "
        + (
            f"views offsets (top {100 * VIEWS_OFFSET_TAIL:g}% of {pairs} impostor pairs): {shifted}; "
            if offsets
            else ""
        )
        + f"identity gate {c.gate:.4f} at FMR {settings.gate_fmr:g} ({c.gate_pairs} impostor pairs); "
        + _one_to_one_line(settings.verify_fmr, c.one_to_one, c.not_calibrated)
        + f"from {folder.root}, stored in {safe_url(settings.store_url) if settings.store_url else settings.db_path}"
    )


@command("calibrate", "store a threshold", _calibrate_arguments)
def calibrate_command(settings: Settings, args: argparse.Namespace) -> int:
    folder = load_labelled_folder(args.dir)
    target = _target_fpir(settings, args)
    service = ManyAnglesService.from_settings(settings)
    calibration = _calibrate(settings, args, service, folder, target)
    for record in calibration.records:
        service.store.set_threshold(record)
    log_command(settings, "calibrate", detail=f"{calibration.model}: FPIR {target:g}")
    if args.json:
        out(json.dumps([r.__dict__ for r in calibration.records]))
        return 0
    out(_calibration_text(settings, args, folder, calibration))
    return 0


def _verify_thresholds(
    settings: Settings,
    embedded: EmbeddedFolder,
    data: EvalData,
    views: tuple[str, ...] | None,
    offsets: dict[str, float],
    model: str,
    dataset: str,
) -> tuple[list[StoredThreshold], str | None]:
    """The one-to-one thresholds at ``verify_fmr``: a photo against a person per rule, and two
    photos (rule ``PHOTOS``); none with ``verify_fmr`` 0 (one to one at the identification
    threshold), and none, with the reason, when the folder has too few impostor claims."""
    fmr = settings.verify_fmr
    if not fmr:
        return [], None
    try:
        per_rule = calibrate_verify(data, views, fmr, offsets=offsets)
    except InvalidInput as exc:
        return [], exc.message
    photos, photo_pairs = calibrate_gate_threshold(embedded, fmr)
    per_rule[PHOTOS] = (photos, photo_pairs)
    made = [
        StoredThreshold(model, "verify_fmr", rule, fmr, threshold, n, dataset, utc_now())
        for rule, (threshold, n) in per_rule.items()
    ]
    return made, None


def _one_to_one_line(fmr: float, made: list[StoredThreshold], not_calibrated: str | None) -> str:
    if not_calibrated is not None:
        return f"one to one: not calibrated ({not_calibrated}); "
    if not made:
        return ""
    listed = ", ".join(f"{'two photos' if r.rule == PHOTOS else r.rule} {r.threshold:.4f}" for r in made)
    return f"one to one at FMR {fmr:g}: {listed} ({made[0].n_negative:,} impostor claims); "


def generator_views(
    generators: tuple[str, ...], model: ModelInfo
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Per generator: the views an enrollment with ``model`` makes by default (classic: the
    views the study chose for the model), and every view it can make."""
    defaults: dict[str, tuple[str, ...]] = {}
    every: dict[str, tuple[str, ...]] = {}
    for generator in generators:
        if generator == "classic":
            from core.augment.classic import CLASSIC_DEFAULT_VIEWS, CLASSIC_VIEWS

            defaults[generator] = model.shipped.views or CLASSIC_DEFAULT_VIEWS
            every[generator] = CLASSIC_VIEWS
        else:
            from core.augment.stable_diffusion import StableDiffusionAugmentor

            defaults[generator] = every[generator] = StableDiffusionAugmentor.default_views
    return defaults, every
