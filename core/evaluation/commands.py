"""The ``eval`` and ``calibrate`` commands of the CLI."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from core.errors import InvalidInput, NotCalibrated
from core.evaluation.dataset import load_labelled_folder
from core.evaluation.evaluate import (
    calibrate_gate_threshold,
    calibrate_threshold,
    embed_folder,
    format_table,
    run_eval,
)
from core.service import ManyAnglesService
from core.settings import Settings
from core.store.gallery import utc_now
from core.store.records import StoredThreshold


def eval_command(settings: Settings, args: argparse.Namespace, out: Callable[[str], None]) -> int:
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
    embedded = embed_folder(settings, folder, workers, generators, gate)
    report = run_eval(settings, embedded, service.model.name, service.model.detector, threshold, generators)
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
    embedded = embed_folder(settings, folder, args.workers)
    threshold, n_impostor = calibrate_threshold(embedded, settings, target)
    gate, n_pairs = calibrate_gate_threshold(embedded, settings.gate_fmr)
    records = [
        StoredThreshold(model, "fpir", target, threshold, n_impostor, str(folder.root), utc_now()),
        StoredThreshold(model, "gate_fmr", settings.gate_fmr, gate, n_pairs, str(folder.root), utc_now()),
    ]
    for record in records:
        service.store.set_threshold(record)
    if args.json:
        out(json.dumps([r.__dict__ for r in records]))
    else:
        out(
            f"model {model}: threshold {threshold:.4f} at FPIR {target:g} ({n_impostor} impostor searches); "
            f"identity gate {gate:.4f} at FMR {settings.gate_fmr:g} ({n_pairs} impostor pairs); "
            f"from {folder.root}, stored in {settings.db_path}"
        )
    return 0
