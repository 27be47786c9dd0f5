"""``manyangles models | reembed | switch | prune``: model versions from the command line."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from core.cli.flags import count
from core.cli.registry import command, out
from core.faces.active import upgrade_notice
from core.settings import EMBEDDER_KINDS, Settings
from core.store.access_log import log_command
from core.store.gallery import GalleryStore
from core.store.model_versions import active_model, list_models, prune_model, resolve_model


@command("models", "model versions: name, dimension, status, vectors, thresholds")
def show_models(settings: Settings, args: argparse.Namespace) -> int:
    store = GalleryStore.from_settings(settings)
    models = list_models(store)
    if args.json:
        out(json.dumps([asdict(m) for m in models]))
        return 0
    for m in models:
        out(f"{m.status:8s}  {m.name}  dim {m.dim}, {m.num_embeddings} vector(s), thresholds {m.thresholds}")
    notice = upgrade_notice(settings, active_model(store))
    if notice:
        out(f"note: {notice}")
    return 0


def _reembed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=EMBEDDER_KINDS, help="the model to embed with")
    parser.add_argument(
        "--address", default=None, help="Ray cluster (auto, host:port, ray://host:10001); default: a local one"
    )
    parser.add_argument("--workers", type=count(), default=None, help="model actors (default: cores - 1)")
    parser.add_argument("--batch-size", type=count(), default=None, help="images per model call")
    parser.add_argument("--no-switch", action="store_true", help="embed only; switch later with `switch`")
    parser.add_argument(
        "--allow-missing", action="store_true", help="switch even if some persons get no vector of the model"
    )
    parser.add_argument("--no-ray", action="store_true", help="one process, no Ray (the benchmark's baseline)")
    parser.add_argument("--job", type=int, default=None, help=argparse.SUPPRESS)  # a job row the API created


@command("reembed", "embed every stored image with another model (Ray Data), then switch", _reembed_arguments)
def reembed_gallery(settings: Settings, args: argparse.Namespace) -> int:
    from core.batch.reembed import reembed

    report = reembed(
        settings,
        args.model,
        address=args.address,
        workers=args.workers,
        batch_size=args.batch_size,
        switch=not args.no_switch,
        allow_missing=args.allow_missing,
        use_ray=not args.no_ray,
        job_id=args.job,
    )
    if args.job is None:  # the API's job (POST /v1/models/reembed) logged itself
        log_command(settings, "reembed", detail=f"{report.model}: {report.embedded} embedded")
    done = (
        f"reembed {report.model}: {report.embedded} embedded, {report.skipped} without a usable face, "
        f"{report.images_per_s:.1f} images/s; active model: {report.active}"
    )
    out(json.dumps({**asdict(report), "images_per_s": report.images_per_s}) if args.json else done)
    return 0


def _model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model name (see `models`), or arcface / dlib / insightface")


def _switch_arguments(parser: argparse.ArgumentParser) -> None:
    _model_argument(parser)
    parser.add_argument("--allow-missing", action="store_true", help="see reembed --allow-missing")


@command("switch", "make a fully embedded model the active one", _switch_arguments)
def switch_model(settings: Settings, args: argparse.Namespace) -> int:
    from core.batch.reembed import switch_to

    store = GalleryStore.from_settings(settings)
    switched = switch_to(store, settings, resolve_model(store, args.model), args.allow_missing)
    log_command(settings, "activate_model", detail=switched.name)
    out(json.dumps(asdict(switched)) if args.json else f"active model: {switched.name}")
    return 0


@command("prune", "remove a model's vectors", _model_argument)
def prune_vectors(settings: Settings, args: argparse.Namespace) -> int:
    store = GalleryStore.from_settings(settings)
    record = resolve_model(store, args.model)
    removed = prune_model(store, record.name)
    log_command(settings, "prune_model", detail=f"{record.name}: {removed} vector(s)")
    out(
        json.dumps({"model": record.name, "removed": removed})
        if args.json
        else f"pruned {record.name}: {removed} vector(s)"
    )
    return 0
