"""The ``eval`` and ``calibrate`` commands of the CLI."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from core.errors import NotCalibrated
from core.evaluation.dataset import load_labelled_folder
from core.evaluation.evaluate import calibrate_threshold, embed_folder, format_table, run_eval
from core.settings import Settings
from core.store.gallery import GalleryStore, utc_now
from core.store.records import StoredThreshold


def _model_names(settings: Settings) -> tuple[str, str, float | None]:
    from core.models import load_face_models

    models = load_face_models(settings)
    return models.embedder.name, models.detector.name, models.embedder.default_threshold


def eval_command(settings: Settings, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    folder = load_labelled_folder(args.dir)
    model, detector, default = _model_names(settings)
    threshold = default if abs(settings.target_fpir - 0.01) < 1e-12 else None
    if settings.db_path.exists():
        stored = GalleryStore(settings.data_dir).get_threshold(model, settings.target_fpir)
        threshold = stored.threshold if stored else threshold
    embedded = embed_folder(settings, folder, args.workers)
    report = run_eval(settings, embedded, model, detector, threshold)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report.to_json(), indent=2))
    out(json.dumps(report.to_json()) if args.json else format_table(report) + f"\nreport written to {args.out}")
    return 0


def calibrate_command(settings: Settings, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    folder = load_labelled_folder(args.dir)
    target = args.target_fpir if args.target_fpir is not None else settings.target_fpir
    if not 0.0 < target < 1.0:
        raise NotCalibrated(f"target FPIR must lie between 0 and 1, got {target}")
    model, _, _ = _model_names(settings)
    embedded = embed_folder(settings, folder, args.workers)
    threshold, n_impostor = calibrate_threshold(embedded, settings, target)
    record = StoredThreshold(model, target, threshold, n_impostor, str(folder.root), utc_now())
    GalleryStore(settings.data_dir).set_threshold(record)
    out(
        json.dumps(record.__dict__) if args.json else
        f"model {model}: threshold {threshold:.4f} at FPIR {target:g} "
        f"({n_impostor} impostor searches on {folder.root}); stored in {settings.db_path}"
    )
    return 0
