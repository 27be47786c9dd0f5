"""The ``eval`` and ``calibrate`` commands of the CLI."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from core.errors import InvalidInput, NotCalibrated
from core.evaluation.calibration import calibrate_rules, calibrate_verify, calibrate_views_offsets
from core.evaluation.dataset import load_labelled_folder
from core.evaluation.eval_data import EvalData
from core.evaluation.evaluate import (
    EmbeddedFolder,
    calibrate_gate_threshold,
    embed_folder,
    format_table,
    run_eval,
)
from core.faces.pipeline import ModelInfo
from core.search.rules import PHOTOS, VIEWS_OFFSET_TAIL
from core.service import ManyAnglesService
from core.settings import Settings
from core.store.access_log import log_command
from core.store.records import StoredThreshold
from core.store.sqlutil import utc_now


def eval_command(settings: Settings, args: argparse.Namespace, out: Callable[[str], None]) -> int:
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


def calibrate_command(settings: Settings, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    folder = load_labelled_folder(args.dir)
    target = args.calibrate_fpir if args.calibrate_fpir is not None else settings.target_fpir
    if not 0.0 < target < 1.0:
        raise InvalidInput(f"--target-fpir must lie strictly between 0 and 1, got {target}")
    service = ManyAnglesService.from_settings(settings)
    model = service.model.name
    try:  # views make the gallery a real one: the rules' thresholds depend on it
        view_gate: float | None = service.gate_threshold()
    except NotCalibrated:
        view_gate = None
    # the views the service makes: Stable Diffusion's when its weights are configured, else classic
    generator = "sd" if settings.sd_model else "classic"
    generators = (generator,) if view_gate is not None and not args.no_views else ()
    # SD runs in one process: one copy of the weights on the GPU
    workers = 1 if generator == "sd" else args.workers
    embedded = embed_folder(settings, folder, workers, generators, view_gate or 1.0, args.cache)
    gate, n_pairs = calibrate_gate_threshold(embedded, settings.gate_fmr)
    defaults, _ = generator_views(generators, service.model)
    views = tuple(f"{generator}:{v}" for v in defaults[generator]) if generators else None
    dataset = str(folder.root)
    data = embedded.eval_data()
    offsets = calibrate_views_offsets(data, views) if views else {}
    shifts = {rule: offset for rule, (offset, _) in offsets.items()}
    rules = calibrate_rules(data, views, target, offsets=shifts, gallery_size=args.gallery_size)
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
    records += [
        StoredThreshold(model, "views_offset", rule, VIEWS_OFFSET_TAIL, offset, n, dataset, utc_now())
        for rule, (offset, n) in offsets.items()
    ]
    one_to_one, not_calibrated = _verify_thresholds(settings, embedded, data, views, shifts, model, dataset)
    records += one_to_one
    records.append(StoredThreshold(model, "gate_fmr", "", settings.gate_fmr, gate, n_pairs, dataset, utc_now()))
    for record in records:
        service.store.set_threshold(record)
    log_command(settings, "calibrate", detail=f"{model}: FPIR {target:g}")
    if args.json:
        out(json.dumps([r.__dict__ for r in records]))
        return 0
    fpir = [r for r in records if r.kind == "fpir"]
    listed = ", ".join(
        f"{r.rule} {r.threshold:.4f} (per-person FMR {r.person_fmr:.1e}: "
        f"{round((r.person_fmr or 0.0) * (r.fmr_pairs or 0)):,} of {r.fmr_pairs or 0:,} pairs)"
        for r in fpir
    )
    size = f"{fpir[0].gallery_size:,} persons" if args.gallery_size else f"galleries of {fpir[0].gallery_size} persons"
    shifted = ", ".join(f"{r.rule} {r.threshold:.4f}" for r in records if r.kind == "views_offset")
    pairs = next((r.n_negative for r in records if r.kind == "views_offset"), 0)
    out(
        f"model {model}: thresholds at FPIR {target:g} for {size} ({records[0].n_negative} impostor searches, "
        f"{f'half the gallery with {generator} views' if views else 'originals only'}): {listed}; "
        + (
            f"views offsets (top {100 * VIEWS_OFFSET_TAIL:g}% of {pairs} impostor pairs): {shifted}; "
            if offsets
            else ""
        )
        + f"identity gate {gate:.4f} at FMR {settings.gate_fmr:g} ({n_pairs} impostor pairs); "
        + _one_to_one_line(settings.verify_fmr, one_to_one, not_calibrated)
        + f"from {folder.root}, stored in {settings.db_path}"
    )
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
