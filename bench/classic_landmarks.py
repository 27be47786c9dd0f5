"""Which views the gate keeps when the classic warps get their 68 points from dlib's 68-point
predictor run on SCRFD's box (what the service does) or from SCRFD's 5 keypoints (the 3D mean face
fitted to them, no extra model), on every enrollment photo of a folder; one run, same gate.

    .venv/bin/python -m bench.classic_landmarks [--faces ../shared/faces] [--out out/bench_classic_landmarks.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe_machine  # noqa: E402

log = logging.getLogger("bench.classic_landmarks")


def fit_mean_face(model: np.ndarray, five: np.ndarray) -> np.ndarray:
    """68 landmarks for a face of which only SCRFD's 5 keypoints are known: the 3D mean face posed
    by the affine camera that best maps its own 5 points (eye centres, nose tip, mouth corners)
    onto them, made a scaled rotation, then a 2D affine correction that lays its 5 points on the
    detected ones. The pose views then turn this face as they turn dlib's 68 points."""
    five = np.asarray(five, dtype=np.float64)
    if not np.isfinite(five).all() or np.ptp(five, axis=0).min() < 1.0:
        raise ValueError("the face's 5 keypoints do not span a face: no pose can be fitted for the classic views")
    model5 = np.stack([model[36:42].mean(axis=0), model[42:48].mean(axis=0), model[30], model[48], model[54]])
    origin = model5.mean(axis=0)
    design = np.hstack([model5 - origin, np.ones((5, 1))])
    solution, *_ = np.linalg.lstsq(design, five, rcond=None)
    a = solution[:3].T
    r1 = a[0] / np.linalg.norm(a[0])
    r2 = a[1] - r1 * (r1 @ a[1])
    r2 /= np.linalg.norm(r2)
    scale = (np.linalg.norm(a[0]) + np.linalg.norm(a[1])) / 2
    camera = np.vstack([r1, r2]) * scale
    projected = (model - origin) @ camera.T + solution[3]
    projected5 = (model5 - origin) @ camera.T + solution[3]
    correction, *_ = np.linalg.lstsq(np.hstack([projected5, np.ones((5, 1))]), five, rcond=None)
    return np.hstack([projected, np.ones((68, 1))]) @ correction


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "faces")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_classic_landmarks.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import dlib

    from core.augment.classic import CLASSIC_VIEWS, ClassicAugmentor
    from core.augment.gate import decide
    from core.augment.views import plan_views
    from core.faces.decode import decode_image
    from core.faces.dlib_models import SHAPE_68, dlib_model_path
    from core.faces.loading import load_face_models
    from core.faces.recognition import FaceEngine, subject_faces
    from core.settings import Settings

    engine = FaceEngine(load_face_models(Settings()))
    gate = engine.embedder.shipped.gate
    assert gate is not None
    predictor = dlib.shape_predictor(str(dlib_model_path(SHAPE_68)))
    classic = ClassicAugmentor()
    requests = plan_views(list(CLASSIC_VIEWS), None, 0, classic.supported_views)
    sources = ("dlib 68 on the SCRFD box (the service)", "scrfd 5 -> fitted mean face")
    kept: dict[str, dict[str, list[float]]] = {s: {v: [] for v in CLASSIC_VIEWS} for s in sources}
    photos = 0
    for folder in sorted(p for p in args.faces.iterdir() if p.is_dir()):
        rgb = decode_image((folder / "1.jpg").read_bytes(), max_bytes=1 << 26, max_pixels=1 << 27).rgb
        faces = engine.detect(rgb)
        if not faces:
            continue
        photos += 1
        original = engine.embed_faces(rgb, faces[:1])[0]
        x1, y1, x2, y2 = original.face.bbox
        shape = predictor(rgb, dlib.rectangle(round(x1), round(y1), round(x2) - 1, round(y2) - 1))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        fitted = fit_mean_face(classic._mean_face, original.face.landmarks5).astype(np.float32)
        variants = (replace(original.face, landmarks68=points), replace(original.face, landmarks68=fitted))
        for source, face in zip(sources, variants):
            for made in classic.generate(rgb, face, requests).views:
                found = subject_faces(engine.detect(made.rgb, small_faces=False))
                vector = engine.embed_faces(made.rgb, found)[0].vector if len(found) == 1 else None
                accepted, _, similarity = decide(len(found), vector, original.vector, gate)
                kept[source][made.request.name].append(similarity if accepted and similarity is not None else np.nan)
    table = {
        source: {
            view: {"kept": float(np.mean(~np.isnan(values))), "similarity": float(np.nanmean(values))}
            for view, values in per_view.items()
        }
        for source, per_view in kept.items()
    }
    report = {"machine": describe_machine(), "photos": photos, "gate": gate, "views": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    lines = [
        f"{photos} enrollment photos, gate {gate:.4f} (ArcFace), views kept (mean similarity of those kept)",
        "",
        "| view | " + " | ".join(sources) + " |",
        "|---|" + "---|" * len(sources),
    ]
    for view in CLASSIC_VIEWS:
        cells = [f"{table[s][view]['kept']:.1%} ({table[s][view]['similarity']:.3f})" for s in sources]
        lines.append(f"| {view} | " + " | ".join(cells) + " |")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
