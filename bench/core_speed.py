"""Core speed, the default model (SCRFD + ArcFace) and dlib side by side in one run: detection per
photo, embedding per face (single and batched), and dlib's network on ONNX Runtime against dlib's
own engine on the same chips.

    .venv/bin/python bench/core_speed.py [--faces ../shared/faces] [--photos 60]

Runs in one process, no worker pool (ONNX Runtime uses every core; dlib's HOG one).
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe_machine
from core.evaluation.dataset import load_labelled_folder
from core.faces.decode import decode_image
from core.faces.loading import load_face_models
from core.settings import Settings

log = logging.getLogger("bench.core_speed")


def _ms(values: list[float]) -> str:
    return f"{1000 * statistics.mean(values):.1f} ms (p50 {1000 * statistics.median(values):.1f})"


def _dlib_engine(model: str) -> Any:
    """dlib's own ResNet engine, when the embedder is the dlib model (else None)."""
    if not model.startswith("dlib-"):
        return None
    import dlib

    from core.faces.dlib_models import RESNET, dlib_model_path

    return dlib.face_recognition_model_v1(str(dlib_model_path(RESNET)))


def measure(settings: Settings, decoded: list[np.ndarray]) -> dict[str, Any]:
    """Detection per photo, embedding per face (one per call, batches of 8 and 32), per-photo total."""
    models = load_face_models(settings)
    models.detector.detect(decoded[0])  # warm-up
    detect_s, crops, sizes = [], [], []
    for rgb in decoded:
        started = time.perf_counter()
        faces = models.detector.detect(rgb)
        detect_s.append(time.perf_counter() - started)
        sizes.append(max(rgb.shape[:2]))
        if faces:
            crops.append(models.embedder.align(rgb, faces[0]))
    models.embedder.embed(crops[:1])  # warm-up
    single = []
    for crop in crops:
        started = time.perf_counter()
        models.embedder.embed([crop])
        single.append(time.perf_counter() - started)
    batched = {}
    for batch in (8, 32):
        stack = (crops * (batch // len(crops) + 1))[:batch]
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            models.embedder.embed(stack)
            runs.append((time.perf_counter() - started) / batch)
        batched[batch] = min(runs)
    return {
        "models": models,
        "detect_s": detect_s,
        "sizes": sizes,
        "crops": crops,
        "single": single,
        "batched": batched,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "faces")
    parser.add_argument("--photos", type=int, default=60)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    photos = load_labelled_folder(args.faces).all_images()[:: max(1, 620 // args.photos)][: args.photos]
    decoded = [decode_image(p.read_bytes(), max_bytes=1 << 26, max_pixels=1 << 27).rgb for p in photos]
    lines = [
        f"machine: {describe_machine()}; {len(decoded)} photos, one process, ONNX Runtime on every core",
        "",
        "| model | detection per photo | embedding, one face per call | per face in a batch of 8 / 32 "
        "| detect + embed per photo (p50) |",
        "|---|---|---|---|---|",
    ]
    dlib_run: dict[str, Any] = {}
    for settings in (Settings(), Settings(detector="dlib", embedder="dlib")):
        run = measure(settings, decoded)
        models = run["models"]
        total = statistics.median(run["detect_s"]) + statistics.median(run["single"])
        lines.append(
            f"| {models.embedder.name} + {models.detector.name} ({models.embedder.provider}) | {_ms(run['detect_s'])} "
            f"| {_ms(run['single'])} | {1000 * run['batched'][8]:.1f} / {1000 * run['batched'][32]:.1f} ms "
            f"| {1000 * total:.1f} ms |"
        )
        if settings.detector == "dlib":
            dlib_run, upsample_below = run, settings.dlib_upsample_below
            small = [d for d, s in zip(run["detect_s"], run["sizes"]) if s <= upsample_below]
            large = [d for d, s in zip(run["detect_s"], run["sizes"]) if s > upsample_below]
            lines.append(
                f"| ... dlib HOG: photos <= {upsample_below} px (upsampled once) n={len(small)}: "
                f"{_ms(small) if small else '-'}; larger n={len(large)}: {_ms(large) if large else '-'} | | | | |"
            )

    # dlib's chips through dlib's own engine (its pip build), interleaved with ours face by face
    models = dlib_run["models"]
    reference = _dlib_engine(models.embedder.name)
    ours_s, dlib_s, worst = [], [], 0.0
    for crop in dlib_run["crops"] if reference else []:
        chips = models.embedder.chips([crop])
        started = time.perf_counter()
        ours = models.embedder.forward(chips)
        ours_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        theirs = np.asarray(reference.compute_face_descriptor(chips), dtype=np.float32)
        dlib_s.append(time.perf_counter() - started)
        worst = max(worst, float(np.abs(ours - theirs).max()))
    if dlib_s:
        ratio = statistics.median(dlib_s) / statistics.median(ours_s)
        lines += [
            "",
            f"dlib's network, face + mirror: ONNX Runtime {_ms(ours_s)}, dlib's own engine on the same chips "
            f"{_ms(dlib_s)}: {ratio:.1f}x (medians), largest difference of a descriptor value {worst:.1e}",
        ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
