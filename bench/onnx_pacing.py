"""The default model's analysis of a photo on three kinds of ONNX Runtime sessions, side by side in
one process: threads that sleep between operators (the sessions before), threads that spin-wait,
and the paced pair the service uses (core/faces/embedders/onnx_runtime.py: spinning while the
machine has idle cores for it), on an idle machine and beside busy processes.

    .venv/bin/python bench/onnx_pacing.py [--people 20] [--busy 0,1] [--out out/bench_onnx_pacing.json]

One photo's work is what the Embedder does per identify: SCRFD sized to the photo, ``norm_crop``,
one ArcFace pass (the photo decoded once, beforehand). The three kinds run photo by photo in turn,
with a pause between calls as between a door camera's requests, so machine noise hits them alike.
``--busy N`` starts N processes that spin on a core each (a loaded box's stand-in: the proxy, the
API, other requests) for a second pass. OpenCV runs on one thread, as in the Embedder.

Then SCRFD's sessions by input size: insightface's default opens one more session per input size
met (a service sized to the photo meets many); ManyAngles runs every size on one session. For
``--sizes`` sizes: the memory each way adds, the first call's time at a new size, and whether the
detections on the photos differ.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe_machine  # noqa: E402

PAUSE_S = 0.03
# ONNX Runtime's threads, and the other processes' load each kind's PacedSession sees
KINDS = (
    ("sleep between operators (before)", lambda: None),  # unknown: the sleeping session
    ("spin-wait", lambda: 0.0),  # none: the spinning one
    ("paced (now)", None),  # the machine's
)


def engines() -> dict[str, tuple[Any, Any]]:
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD

    from core.faces.embedders.arcface import ArcFaceEmbedder
    from core.faces.embedders.arcface_wheel import DETECTOR_FILE, RECOGNIZER_FILE, verified_file
    from core.faces.embedders.onnx_runtime import PacedSession
    from core.faces.scrfd_detector import ScrfdDetector

    cpu = ["CPUExecutionProvider"]
    out = {}
    for kind, others in KINDS:
        detector_file, recognizer_file = verified_file(DETECTOR_FILE), verified_file(RECOGNIZER_FILE)
        detector = PacedSession.open(detector_file, cpu, others=others)
        scrfd = SCRFD(model_file=str(detector_file), session=detector, static_shape_sessions=False)
        scrfd.prepare(0, det_thresh=0.5, input_size=(640, 640))
        arcface = ArcFaceONNX(
            model_file=str(recognizer_file), session=PacedSession.open(recognizer_file, cpu, others=others)
        )
        out[kind] = (ScrfdDetector(scrfd, "scrfd"), ArcFaceEmbedder(arcface, "arcface", "CPUExecutionProvider"))
    return out


def photo_seconds(detector: Any, embedder: Any, rgb: np.ndarray) -> tuple[float, float]:
    """Wall and CPU seconds of one photo's detection, alignment and embedding."""
    wall, cpu = time.perf_counter(), time.process_time()
    faces = detector.detect(rgb)
    if faces:
        embedder.embed([embedder.align(rgb, faces[0])])
    return time.perf_counter() - wall, time.process_time() - cpu


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def per_size_sessions(photos: list[np.ndarray], count: int) -> list[dict[str, Any]]:
    """SCRFD with a session per input size (insightface's default) and with one (ManyAngles')."""
    import cv2
    from insightface.model_zoo.scrfd import SCRFD

    from core.faces.embedders.arcface_wheel import DETECTOR_FILE, verified_file
    from core.faces.embedders.onnx_runtime import onnx_session
    from core.faces.scrfd_detector import detector_input

    path = verified_file(DETECTOR_FILE)
    blank = np.zeros((640, 640, 3), np.uint8)
    sizes = [(w, h) for w in range(160, 641, 32) for h in range(160, 641, 96)][:count]
    out, found = [], []
    for static in (True, False):
        model = SCRFD(
            model_file=str(path), session=onnx_session(path, ["CPUExecutionProvider"]), static_shape_sessions=static
        )
        model.prepare(0, det_thresh=0.5, input_size=(640, 640))
        before, started = rss_mb(), time.perf_counter()
        for size in sizes:
            model.detect(blank, input_size=size)
        first_s = (time.perf_counter() - started) / len(sizes)
        grown = rss_mb() - before
        detections = []
        for rgb in photos:
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            height, width = rgb.shape[:2]
            detections.append(model.detect(bgr, input_size=detector_input(height, width, 640, 20), max_num=0))
        found.append(detections)
        steady = {}
        for size in ((256, 256), (640, 640)):  # warm sizes, one call at a time
            runs = []
            for _ in range(30):
                time.sleep(PAUSE_S)
                started = time.perf_counter()
                model.detect(blank, input_size=size)
                runs.append(time.perf_counter() - started)
            steady[f"{size[0]}px_s"] = statistics.median(runs)
        kind = "a session per size (insightface's default, before)" if static else "one session for every size (now)"
        out.append({"sessions": kind, "sizes": len(sizes), "memory_mb": grown, "first_call_s": first_s, **steady})
    counts = [[len(boxes) for boxes, _ in detections] for detections in found]
    differ = (
        max(
            float(np.abs(a - b).max()) if a.size else 0.0
            for (boxes_a, kps_a), (boxes_b, kps_b) in zip(*found)
            for a, b in ((boxes_a, boxes_b), (kps_a, kps_b))
        )
        if counts[0] == counts[1]
        else float("inf")  # a face found one way and not the other
    )
    for row in out:
        row["largest_difference"] = differ
        row["photos"] = len(photos)
    return out


def main() -> None:
    import cv2

    from core.faces.decode import decode_image

    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "faces")
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--busy", default="0,1", help="busy processes beside the analysis, one pass each")
    parser.add_argument("--sizes", type=int, default=30, help="input sizes for the sessions-per-size check")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_onnx_pacing.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    folders = sorted(p for p in args.faces.iterdir() if p.is_dir() and (p / "2.jpg").exists())
    chosen = folders[:: max(1, len(folders) // args.people)][: args.people]
    photos = [decode_image((f / "2.jpg").read_bytes(), max_bytes=1 << 25, max_pixels=50_000_000).rgb for f in chosen]
    kinds = engines()
    for detector, embedder in kinds.values():  # warm-up
        photo_seconds(detector, embedder, photos[0])
    results: list[dict[str, Any]] = []
    for busy in (int(b) for b in args.busy.split(",")):
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(0.5)
            times: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
            for _ in range(args.reps):
                for rgb in photos:
                    for kind, (detector, embedder) in kinds.items():
                        time.sleep(PAUSE_S)
                        times[kind].append(photo_seconds(detector, embedder, rgb))
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
        base = statistics.median(w for w, _ in times[KINDS[0][0]])
        for kind, rows in times.items():
            wall, cpu = statistics.median(w for w, _ in rows), statistics.median(c for _, c in rows)
            results.append({"busy": busy, "kind": kind, "wall_s": wall, "cpu_s": cpu, "vs_sleeping": wall / base})
    print(f"machine: {describe_machine()}; {len(photos)} photos x {args.reps}, one process\n")
    print("| busy processes | ONNX Runtime's threads | wall per photo | CPU per photo | wall vs sleeping |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['busy']} | {r['kind']} | {r['wall_s'] * 1000:.1f} ms | {r['cpu_s'] * 1000:.1f} ms "
            f"| {r['vs_sleeping']:.2f}x |"
        )
    sessions = per_size_sessions(photos, args.sizes)
    print(
        "\n| SCRFD's sessions | input sizes met | memory added | first call at a new size | 256 px / 640 px "
        f"after | detections on the {len(photos)} photos differ by |"
    )
    print("|---|---|---|---|---|---|")
    for row in sessions:
        print(
            f"| {row['sessions']} | {row['sizes']} | {row['memory_mb']:.0f} MB | {row['first_call_s'] * 1000:.0f} ms "
            f"| {row['256px_s'] * 1000:.2f} / {row['640px_s'] * 1000:.2f} ms | {row['largest_difference']:.2g} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"machine": describe_machine(), "results": results, "scrfd_sessions": sessions}, indent=2)
    )


if __name__ == "__main__":
    main()
