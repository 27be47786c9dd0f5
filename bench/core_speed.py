"""Core speed: detection per photo, embedding per face (single and batched), and for the dlib
model its network on ONNX Runtime against dlib's own engine on the same chips.

    .venv/bin/python bench/core_speed.py [--faces ../shared/faces] [--photos 60]

Runs in one process on one core's worth of work (no worker pool), so figures are per-core.
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
from core.images import decode_image
from core.models import load_face_models
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "faces")
    parser.add_argument("--photos", type=int, default=60)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    settings = Settings()
    models = load_face_models(settings)
    photos = load_labelled_folder(args.faces).all_images()[:: max(1, 620 // args.photos)][: args.photos]
    decoded = [decode_image(p.read_bytes(), max_bytes=1 << 26, max_pixels=1 << 27).rgb for p in photos]

    models.detector.detect(decoded[0])  # warm-up
    detect_s, crops, sizes = [], [], []
    for rgb in decoded:
        started = time.perf_counter()
        faces = models.detector.detect(rgb)
        detect_s.append(time.perf_counter() - started)
        sizes.append(max(rgb.shape[:2]))
        if faces:
            crops.append(models.embedder.align(rgb, faces[0]))

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

    # the same chips through dlib's own engine (its pip build), interleaved with ours face by face
    reference = _dlib_engine(models.embedder.name)
    ours_s, dlib_s, worst = [], [], 0.0
    for crop in crops if reference else []:
        chips = models.embedder.chips([crop])
        started = time.perf_counter()
        ours = models.embedder.forward(chips)
        ours_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        theirs = np.asarray(reference.compute_face_descriptor(chips), dtype=np.float32)
        dlib_s.append(time.perf_counter() - started)
        worst = max(worst, float(np.abs(ours - theirs).max()))

    small = [d for d, s in zip(detect_s, sizes) if s <= settings.dlib_upsample_below]
    large = [d for d, s in zip(detect_s, sizes) if s > settings.dlib_upsample_below]
    lines = [
        f"machine: {describe_machine()}",
        f"model: {models.embedder.name} ({models.embedder.provider}); detector {models.detector.name}",
        "",
        "| measure | value |",
        "|---|---|",
        f"| detection + 68 landmarks, all {len(detect_s)} photos | {_ms(detect_s)} |",
        f"| ... photos <= {settings.dlib_upsample_below} px (upsampled once), n={len(small)} | {_ms(small) if small else '-'} |",
        f"| ... larger photos, n={len(large)} | {_ms(large) if large else '-'} |",
        f"| embedding, one face per call (2 forward passes: face + mirror) | {_ms(single)} |",
    ]
    lines += [f"| embedding, batch of {b}, per face | {1000 * t:.1f} ms |" for b, t in batched.items()]
    if dlib_s:
        ratio = statistics.median(dlib_s) / statistics.median(ours_s)
        lines += [
            f"| network, face + mirror: {models.embedder.provider} | {_ms(ours_s)} |",
            f"| network, face + mirror: dlib's own engine, same chips | {_ms(dlib_s)} |",
            f"| ... speed-up (medians), largest difference of a descriptor value | {ratio:.1f}x, {worst:.1e} |",
        ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
