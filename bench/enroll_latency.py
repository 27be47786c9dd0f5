"""Enrollment and identification latency through HTTP against a plain pass of the same models, in one run.

    .venv/bin/python bench/enroll_latency.py [--model arcface|dlib] [--people 10] [--reps 3] [--views 5]
        [--out out/bench_enroll_latency.json]

The reference is what a user of the models alone would write, serial, in one process. For the
default model (``arcface``): insightface's own ``model_zoo.get_model`` on the wheel's two files,
decode with OpenCV, SCRFD at 640x640, ``norm_crop`` to 112, one ArcFace pass. For ``dlib``: decode
with Pillow, HOG upsampled once, 68 landmarks, one ResNet pass. ManyAngles runs as users run it:
a local Ray Serve application (the CPU layout of serve_config.yaml) answering HTTP on 127.0.0.1.
Measurements are interleaved person by person (plain, enroll, plain, identify) so machine noise
hits both sides alike. Per person the median of ``--reps``; the table gives medians over people.

Targets (the foundation issue, and issue 38 for the default model): enrollment with 5 classic
views (the model's chosen views first, then the generator's others) <= 1.0x six plain passes (the enrollment photo's
plain time x 6); identify of a one-face photo <= 1.2x one plain pass. ``--views N`` compares an
enrollment with N views to N + 1 plain passes.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.local_serve import start_local_serve  # noqa: E402
from bench.machine import describe_machine  # noqa: E402

log = logging.getLogger("bench.enroll_latency")
KEY = "bench-key"
STAGES = ("decode", "detect", "embed", "generate", "gate", "store")
# A pause between the plain pass and a request: ONNX Runtime's threads spin-wait for a while after
# a run (the plain pass keeps that default) and would slow whichever side runs next on 2 cores.
SETTLE_S = 0.2


class PlainArcFace:
    """insightface's own wrappers on the default model's two files, as its README uses them."""

    name = "plain SCRFD + ArcFace (insightface)"

    def __init__(self) -> None:
        from insightface.model_zoo import model_zoo

        from core.faces.embedders.arcface_wheel import DETECTOR_FILE, RECOGNIZER_FILE, wheel_folder

        folder, providers = wheel_folder(), ["CPUExecutionProvider"]
        self.detector = model_zoo.get_model(str(folder / DETECTOR_FILE), providers=providers)
        self.detector.prepare(0, input_size=(640, 640), det_thresh=0.5)
        self.recognizer = model_zoo.get_model(str(folder / RECOGNIZER_FILE), providers=providers)

    def photo_seconds(self, data: bytes, every_face: bool = True) -> float:
        """Decode, detect, align and embed every face (identify) or the largest (an enrollment)."""
        import cv2
        from insightface.utils import face_align

        started = time.perf_counter()
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        boxes, keypoints = self.detector.detect(bgr, max_num=0 if every_face else 1, metric="max")
        for kps in keypoints:
            self.recognizer.get_feat(face_align.norm_crop(bgr, landmark=kps, image_size=112))
        return time.perf_counter() - started


class PlainDlib:
    name = "plain dlib"

    def __init__(self) -> None:
        import dlib

        from core.faces.dlib_models import RESNET, SHAPE_68, dlib_model_path

        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(dlib_model_path(SHAPE_68)))
        self.net = dlib.face_recognition_model_v1(str(dlib_model_path(RESNET)))

    def photo_seconds(self, data: bytes, every_face: bool = True) -> float:
        from PIL import Image

        started = time.perf_counter()
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        rects = list(self.detector(rgb, 1))
        for rect in rects if every_face else sorted(rects, key=lambda r: r.area(), reverse=True)[:1]:
            self.net.compute_face_descriptor(rgb, self.shape(rgb, rect))
        return time.perf_counter() - started


def identify_split(client: httpx.Client, chosen: list[Path], reps: int) -> dict[str, float]:
    """Where an identify's time goes, identify by identify: the photo's analysis (decode, detect,
    embed; in the API replica when its copy is free, as for a lone request: serve/near.py) and the
    service's other work (search, thresholds, timing row) from the service's own timing row
    (GET /v1/stats/searches), and the rest, HTTP and Serve (client, proxy, the hop to the API
    replica, FastAPI); beside it, the HTTP floor alone (a GET of one page of persons), not part of
    the sum."""
    parts: dict[str, list[float]] = {"total": [], "analysis": [], "search and the rest": [], "HTTP and Serve": []}
    floor: list[float] = []
    last = client.get("/v1/stats/searches", params={"limit": 1}).json()["runs"][0]["id"]
    for folder in chosen:
        probe = (folder / "2.jpg").read_bytes()
        for _ in range(reps):
            time.sleep(SETTLE_S)
            started = time.perf_counter()
            client.post("/v1/identify", files={"photo": ("q.jpg", probe, "image/jpeg")}).raise_for_status()
            total = time.perf_counter() - started
            run = client.get("/v1/stats/searches", params={"limit": 1}).json()["runs"][0]
            if run["id"] == last:  # its timing row not written yet: leave it out
                continue
            last = run["id"]
            parts["total"].append(total)
            parts["analysis"].append(run["timings_s"]["analyze"])
            parts["search and the rest"].append(run["total_s"] - run["timings_s"]["analyze"])
            parts["HTTP and Serve"].append(total - run["total_s"])
            started = time.perf_counter()
            client.get("/v1/persons", params={"limit": 1}).raise_for_status()
            floor.append(time.perf_counter() - started)
    split = {k: statistics.median(v) for k, v in parts.items()}
    split["HTTP floor (a GET, not in the sum)"] = statistics.median(floor)
    return split


def people(faces: Path, count: int) -> list[Path]:
    folders = sorted(p for p in faces.iterdir() if p.is_dir() and (p / "2.jpg").exists())
    step = max(1, len(folders) // count)
    return folders[::step][:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "faces")
    parser.add_argument("--model", choices=("arcface", "dlib"), default="arcface", help="the service's model")
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--views", type=int, default=5, help="classic views per enrollment (the service's default: 10)")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_enroll_latency.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import warnings

    import ray
    from ray import serve

    from core.settings import Settings
    from serve.app import compose
    from serve.config import deployment_options

    warnings.filterwarnings("ignore", category=FutureWarning)  # insightface's norm_crop on scikit-image 0.26
    plain = PlainArcFace() if args.model == "arcface" else PlainDlib()
    settings = (
        Settings(api_key=KEY) if args.model == "arcface" else Settings(api_key=KEY, detector="dlib", embedder="dlib")
    )
    port = start_local_serve(num_cpus=2)
    data_dir = Path(tempfile.mkdtemp(prefix="manyangles-bench-"))
    rows = []
    try:
        serve.run(
            compose(settings.replace(data_dir=data_dir), deployment_options()),
            name="bench",
            route_prefix="/",
        )
        auth = {"X-API-Key": KEY}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600, headers=auth) as client:
            health = client.get("/v1/health").json()["deployments"]
            workers = health["embedder"]["model"]["workers"]
            # the views an enrollment makes by default (the model's), then the generator's others
            offered = health["generator"]["default_views"]
            offered += [v for v in health["generator"]["views"] if v not in offered]
            views = ",".join(offered[: args.views])
            chosen = people(args.faces, args.people)
            # warm-up: every code path once
            warm = (chosen[0] / "1.jpg").read_bytes()
            done = client.post(
                "/v1/persons",
                data={"name": "warm", "views": views, "face": "largest"},
                files={"photo": ("w.jpg", warm, "image/jpeg")},
            )
            done.raise_for_status()
            client.post("/v1/identify", files={"photo": ("w.jpg", warm, "image/jpeg")}).raise_for_status()
            client.delete(f"/v1/persons/{done.json()['person_id']}").raise_for_status()
            for folder in chosen:  # the gallery identify searches: every chosen person, original only
                body = (folder / "1.jpg").read_bytes()
                client.post(
                    "/v1/persons",
                    data={"name": folder.name, "face": "largest", "force": "true"},
                    files={"photo": ("p.jpg", body, "image/jpeg")},
                ).raise_for_status()
            for folder in chosen:
                enroll_photo, probe = (folder / "1.jpg").read_bytes(), (folder / "2.jpg").read_bytes()
                plain_enroll, plain_probe, enroll, identify, stages = [], [], [], [], []
                for rep in range(args.reps):
                    plain_enroll.append(plain.photo_seconds(enroll_photo, every_face=False))
                    time.sleep(SETTLE_S)
                    started = time.perf_counter()
                    response = client.post(
                        "/v1/persons",
                        # force: the face is in the gallery (identify searches it); the duplicate
                        # check is one search, what identify's figure measures
                        data={
                            "name": f"{folder.name} #{rep}",
                            "views": views,
                            "force": "true",
                            "face": "largest",  # SCRFD finds bystanders in a few of these photos
                        },
                        files={"photo": ("p.jpg", enroll_photo, "image/jpeg")},
                    )
                    enroll.append(time.perf_counter() - started)
                    response.raise_for_status()
                    body = response.json()
                    stages.append({**body["timings_s"], "views_kept": sum(v["accepted"] for v in body["views"])})
                    client.delete(f"/v1/persons/{body['person_id']}").raise_for_status()
                    time.sleep(SETTLE_S)
                    plain_probe.append(plain.photo_seconds(probe))
                    time.sleep(SETTLE_S)
                    started = time.perf_counter()
                    found = client.post("/v1/identify", files={"photo": ("q.jpg", probe, "image/jpeg")})
                    identify.append(time.perf_counter() - started)
                    found.raise_for_status()
                row = {
                    "person": folder.name,
                    "plain_enroll_photo_s": statistics.median(plain_enroll),
                    "enroll_s": statistics.median(enroll),
                    "plain_probe_s": statistics.median(plain_probe),
                    "identify_s": statistics.median(identify),
                    "stages_s": {k: statistics.median(s.get(k, 0.0) for s in stages) for k in (*STAGES, "total")},
                    "views_kept": stages[-1]["views_kept"],
                }
                row["enroll_ratio"] = row["enroll_s"] / ((1 + args.views) * row["plain_enroll_photo_s"])
                row["identify_ratio"] = row["identify_s"] / row["plain_probe_s"]
                log.info(
                    "%-24s enroll %.3f s = %.2fx %d plain; identify %.3f s = %.2fx one plain",
                    folder.name,
                    row["enroll_s"],
                    row["enroll_ratio"],
                    1 + args.views,
                    row["identify_s"],
                    row["identify_ratio"],
                )
                rows.append(row)
            split = identify_split(client, chosen, args.reps)
    finally:
        serve.shutdown()
        ray.shutdown()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    summary = {
        "machine": describe_machine(),
        "model": args.model,
        "reference": plain.name,
        "model_workers": workers,
        "people": len(rows),
        "reps": args.reps,
        "enroll_ratio_median": med("enroll_ratio"),
        "identify_ratio_median": med("identify_ratio"),
        "enroll_s_median": med("enroll_s"),
        "views": args.views,
        "view_names": views,
        "plain_photos_s_median": (1 + args.views) * med("plain_enroll_photo_s"),
        "identify_s_median": med("identify_s"),
        "plain_probe_s_median": med("plain_probe_s"),
        "stages_s_median": {k: statistics.median(r["stages_s"][k] for r in rows) for k in (*STAGES, "total")},
        "identify_split_s": split,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    stages = summary["stages_s_median"]
    http = summary["enroll_s_median"] - stages["total"]
    lines = [
        f"machine: {summary['machine']}; embedder model processes: {workers}",
        f"{len(rows)} people x {args.reps} reps, medians over people",
        "",
        f"| measure | ManyAngles (HTTP) | {plain.name} | ratio | target |",
        "|---|---|---|---|---|",
        f"| enroll + {args.views} classic views ({views}) | {summary['enroll_s_median']:.3f} s | {1 + args.views} x "
        f"{med('plain_enroll_photo_s'):.3f} s = {summary['plain_photos_s_median']:.3f} s | "
        f"**{summary['enroll_ratio_median']:.2f}x** | <= 1.0x |",
        f"| identify, one face | {summary['identify_s_median']:.3f} s | {summary['plain_probe_s_median']:.3f} s | "
        f"**{summary['identify_ratio_median']:.2f}x** | <= 1.2x |",
        "",
        "enrollment stages (median s): "
        + ", ".join(f"{k} {stages[k]:.3f}" for k in STAGES)
        + f"; service total {stages['total']:.3f}; HTTP + Ray + client {http:.3f}",
        "identify, where the time goes (median s): "
        + ", ".join(f"{k} {v:.3f} ({v / split['total']:.0%})" for k, v in split.items() if k != "total")
        + f"; total {split['total']:.3f}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
