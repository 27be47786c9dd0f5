"""The classic views' landmark warps before and after issue 39 item 7, side by side in one run:
the piecewise-affine warp pinned to the crop's border (the old one, kept here only) against the
feathered thin-plate spline of core/augment/classic.py, on every enrollment photo of a folder
with the service's gate (ArcFace by default, its 68 points from dlib's predictor on SCRFD's box).

Per view: the share the gate keeps, the mean similarity of the kept ones to the original, the
paired similarity change, the turn SCRFD sees (its nose tip's offset from the eyes' midpoint,
view minus photo), and, for the landmark views, the seams: outside the face (the convex
hull of the points before and after the move, raised over the forehead) the warp's bend (99th
percentile of its second derivatives: a piecewise-affine warp kinks along every triangle edge),
its stretch (the largest local scale change, either way: a stretched ear), the mean colour
change of the crop's pixels there, and the share of them the warp moves under half a pixel.

    .venv/bin/python -m bench.classic_seams [--faces ../shared/faces] [--out out/bench_classic_seams.json]
        [--figure docs/classic-views-seams.png --figure-photo Barack_Obama] [--limit N]

Results and their reading: docs/studies/views-and-rules.md, "Classic views without seams (issue 39)".
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe_machine  # noqa: E402
from core.augment.classic import (  # noqa: E402
    _FEATHER,
    _MAP_STRIDE,
    _POSE_DEGREES,
    ClassicAugmentor,
    WarpField,
    _face_hull,
    _grid_coordinates,
    _upsample_map,
)

log = logging.getLogger("bench.classic_seams")
METHODS = ("old", "new")
LANDMARK_VIEWS = (*_POSE_DEGREES, "smiling")


def piecewise_affine_map(size: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The warp before issue 39 item 7 (core/augment/classic.py's ``_warp`` until then), as its
    backward map (size, size, 2): Delaunay triangles over the target points and 8 points on the
    crop's border (pinned), each triangle's pixels sampled from its source triangle through one
    affine map, on a grid of every 4th pixel, interpolated."""
    from scipy.spatial import Delaunay

    n = size - 1
    border = np.array([[0, 0], [n / 2, 0], [n, 0], [n, n / 2], [n, n], [n / 2, n], [0, n], [0, n / 2]])
    source = np.vstack([src, border]).astype(np.float64)
    target = np.vstack([dst, border]).astype(np.float64)
    triangulation = Delaunay(target)
    coarse = np.arange(0, size + _MAP_STRIDE - 1, _MAP_STRIDE, dtype=np.float64)
    coarse[-1] = min(coarse[-1], n)
    ys, xs = np.meshgrid(coarse, coarse, indexing="ij")
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1)
    simplex = triangulation.find_simplex(pixels)
    inside = simplex >= 0
    map_xy = pixels.copy()
    transform = triangulation.transform[simplex[inside]]
    bary2 = np.einsum("ijk,ik->ij", transform[:, :2], pixels[inside] - transform[:, 2])
    bary = np.hstack([bary2, 1.0 - bary2.sum(axis=1, keepdims=True)])
    corners = source[triangulation.simplices[simplex[inside]]]
    map_xy[inside] = np.einsum("ij,ijk->ik", bary, corners)
    grid = map_xy.reshape(len(coarse), len(coarse), 2).astype(np.float32)
    return np.asarray(_upsample_map(grid, _grid_coordinates(coarse, size)))


class PiecewiseAffineAugmentor(ClassicAugmentor):
    """The classic augmentor with the old warp: the whole crop moves (weight 1 everywhere)."""

    def _warp_field(self, src: np.ndarray, dst: np.ndarray, feather: Any = None) -> WarpField:
        full = piecewise_affine_map(self.size, src, dst)
        return WarpField(np.ascontiguousarray(full), np.ones(full.shape[:2], np.float32))


def augmentor(method: str) -> ClassicAugmentor:
    return PiecewiseAffineAugmentor() if method == "old" else ClassicAugmentor()


def target_points(aug: ClassicAugmentor, view: str, points: np.ndarray) -> np.ndarray:
    if view == "smiling":
        return aug._smile_target(points)
    return aug._pose_target(points, *_POSE_DEGREES[view])


def outside_face(size: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Pixels outside the face (the hull the new warp moves in full), 3 px clear of the crop's edge."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, np.round(_face_hull(src, dst, _FEATHER.forehead)).astype(np.int32), 1)
    outside = mask == 0
    outside[:3], outside[-3:], outside[:, :3], outside[:, -3:] = False, False, False, False
    return outside


def seam_measures(region: np.ndarray, view: np.ndarray, map_xy: np.ndarray, outside: np.ndarray) -> dict[str, float]:
    """The warp's bend and stretch outside the face, the colour change there and the share of it
    moved under half a pixel; the least Jacobian determinant over the whole crop (below 0: the
    warp folds: a piece of the photo drawn twice, mirrored)."""
    jacobian = [np.gradient(map_xy[..., c], axis=(1, 0)) for c in (0, 1)]  # [[dx/dx, dx/dy], [dy/dx, dy/dy]]
    second = [np.gradient(d, axis=a) for row in jacobian for d in row for a in (1, 0)]
    bend = np.sqrt(sum(s * s for s in second))
    a, b = jacobian[0]
    c, d = jacobian[1]
    # singular values of [[a, b], [c, d]]
    frob, det = a * a + b * b + c * c + d * d, a * d - b * c
    root = np.sqrt(np.maximum(frob * frob / 4 - det * det, 0.0))
    high = np.sqrt(frob / 2 + root)
    low = np.sqrt(np.maximum(frob / 2 - root, 1e-12))
    stretch = np.maximum(high, 1.0 / low)
    change = np.abs(view.astype(np.float32) - region.astype(np.float32)).mean(axis=2)
    pixels = np.arange(map_xy.shape[0], dtype=np.float32)
    moved = np.linalg.norm(map_xy - np.stack(np.meshgrid(pixels, pixels, indexing="xy"), axis=-1), axis=2)
    return {
        "bend_p99": float(np.percentile(bend[outside], 99)),
        "stretch_max": float(stretch[outside].max()),
        "colour_change": float(change[outside].mean()),
        "still": float((moved[outside] < 0.5).mean()),
        "min_det": float(det[2:-2, 2:-2].min()),
    }


def pose_offsets(landmarks5: np.ndarray) -> tuple[float, float]:
    """SCRFD's view of the head's pose: the nose tip's offset from the eyes' midpoint, across in
    eye distances (yaw) and down in eyes-to-mouth heights (pitch)."""
    left_eye, right_eye, nose, mouth_left, mouth_right = np.asarray(landmarks5, dtype=np.float64)
    eyes, mouth = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    yaw = (nose[0] - eyes[0]) / max(float(np.linalg.norm(right_eye - left_eye)), 1e-6)
    pitch = (nose[1] - eyes[1]) / max(float(mouth[1] - eyes[1]), 1e-6)
    return float(yaw), float(pitch)


def figure(rgb: np.ndarray, face: Any, path: Path, tile: int = 320) -> None:
    """Rows: before, after; columns: the photo's crop, left, right. A palette PNG."""
    from PIL import Image

    from core.augment.views import plan_views

    rows = []
    for method in METHODS:
        aug = augmentor(method)
        region, _ = aug._crop(rgb, face)
        views = aug.generate(rgb, face, plan_views(["left", "right"], None, 0, aug.supported_views)).views
        tiles = [region, *(v.rgb for v in views)]
        labels = [
            "photo",
            f"left ({'before' if method == 'old' else 'after'})",
            f"right ({'before' if method == 'old' else 'after'})",
        ]
        cells = []
        for img, label in zip(tiles, labels):
            small = np.ascontiguousarray(cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA))
            cv2.putText(small, label, (6, tile - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 4, cv2.LINE_AA)
            cv2.putText(small, label, (6, tile - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
            cells.append(small)
        rows.append(np.hstack(cells))
    image = Image.fromarray(np.vstack(rows)).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    log.info("figure: %s (%d KB)", path, path.stat().st_size // 1024)


def summarise(records: list[dict[str, Any]], views: tuple[str, ...]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for view in views:
        entry: dict[str, Any] = {}
        for method in METHODS:
            rows = [r[method] for r in records if r["view"] == view]
            kept = [r["similarity"] for r in rows if r["accepted"]]
            entry[method] = {
                "photos": len(rows),
                "kept": float(np.mean([r["accepted"] for r in rows])),
                "similarity_kept": float(np.mean(kept)) if kept else None,
                "latency_ms_median": float(np.median([r["latency_s"] for r in rows]) * 1000),
            }
            for key in ("bend_p99", "stretch_max", "colour_change", "still", "min_det"):
                values = [r[key] for r in rows if key in r]
                if values:
                    entry[method][key] = float(np.median(values)) if key != "min_det" else float(np.min(values))
            turns = [r["turn"] for r in rows if "turn" in r]
            entry[method]["turn_mean"] = float(np.mean(turns)) if turns else None
            entry[method]["folded"] = sum(1 for r in rows if r.get("min_det", 1.0) <= 0.0)
        pairs = [
            r["new"]["similarity"] - r["old"]["similarity"]
            for r in records
            if r["view"] == view and r["old"]["similarity"] is not None and r["new"]["similarity"] is not None
        ]
        entry["similarity_change"] = {
            "pairs": len(pairs),
            "mean": float(np.mean(pairs)) if pairs else None,
            "min": float(np.min(pairs)) if pairs else None,
        }
        entry["gate_flips"] = {
            "kept_only_old": sum(
                1 for r in records if r["view"] == view and r["old"]["accepted"] and not r["new"]["accepted"]
            ),
            "kept_only_new": sum(
                1 for r in records if r["view"] == view and r["new"]["accepted"] and not r["old"]["accepted"]
            ),
        }
        table[view] = entry
    return table


def markdown(report: dict[str, Any]) -> str:
    table = report["views"]
    lines = [
        f"{report['photos']} enrollment photos, gate {report['gate']:.4f} (ArcFace); old -> new",
        "",
        "| view | kept | mean similarity of kept | paired change (pairs) | turn | bend p99 | stretch max"
        " | colour change | still | folded (least det) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for view, entry in table.items():
        old, new, change = entry["old"], entry["new"], entry["similarity_change"]
        cells = [
            f"{old['kept']:.1%} -> {new['kept']:.1%}",
            f"{old['similarity_kept']:.3f} -> {new['similarity_kept']:.3f}",
            f"{change['mean']:+.3f} ({change['pairs']})",
            f"{old['turn_mean']:+.3f} -> {new['turn_mean']:+.3f}",
        ]
        if "bend_p99" in old:
            cells += [
                f"{old['bend_p99']:.3f} -> {new['bend_p99']:.3f}",
                f"{old['stretch_max']:.2f} -> {new['stretch_max']:.2f}",
                f"{old['colour_change']:.1f} -> {new['colour_change']:.1f}",
                f"{old['still']:.0%} -> {new['still']:.0%}",
                f"{old['folded']} ({old['min_det']:.2f}) -> {new['folded']} ({new['min_det']:.2f})",
            ]
        else:
            cells += ["-"] * 5
        lines.append(f"| {view} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "faces")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_classic_seams.json")
    parser.add_argument("--figure", type=Path, default=None, help="write the before/after figure here")
    parser.add_argument("--figure-photo", default="Barack_Obama")
    parser.add_argument("--limit", type=int, default=0, help="only the first N identities (0: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from core.augment.classic import CLASSIC_VIEWS
    from core.augment.gate import decide
    from core.augment.views import plan_views
    from core.faces.decode import decode_image
    from core.faces.loading import load_face_models
    from core.faces.recognition import FaceEngine, subject_faces
    from core.settings import Settings

    def load(path: Path) -> np.ndarray:
        return decode_image(path.read_bytes(), max_bytes=1 << 26, max_pixels=1 << 27).rgb

    engine = FaceEngine(load_face_models(Settings()))
    gate = engine.embedder.shipped.gate
    assert gate is not None
    augmentors = {m: augmentor(m) for m in METHODS}
    requests = plan_views(list(CLASSIC_VIEWS), None, 0, augmentors["new"].supported_views)
    if args.figure is not None:
        rgb = load(args.faces / args.figure_photo / "1.jpg")
        figure(rgb, engine.detect(rgb)[0], args.figure)
    records: list[dict[str, Any]] = []
    photos = 0
    started = time.perf_counter()
    folders = sorted(p for p in args.faces.iterdir() if p.is_dir() and (p / "1.jpg").is_file())
    for folder in folders[: args.limit or None]:
        rgb = load(folder / "1.jpg")
        faces = engine.detect(rgb)
        if not faces:
            log.info("%s: no face", folder.name)
            continue
        photos += 1
        original = engine.embed_faces(rgb, faces[:1])[0]
        face = original.face
        pose = pose_offsets(face.landmarks5)
        per_view: dict[str, dict[str, Any]] = {v: {"photo": folder.name, "view": v} for v in CLASSIC_VIEWS}
        for method, aug in augmentors.items():
            region, points = aug._crop(rgb, face)
            for made in aug.generate(rgb, face, requests).views:
                found = subject_faces(engine.detect(made.rgb, small_faces=False))
                vector = engine.embed_faces(made.rgb, found)[0].vector if len(found) == 1 else None
                accepted, _, similarity = decide(len(found), vector, original.vector, gate)
                row: dict[str, Any] = {
                    "accepted": bool(accepted),
                    "similarity": similarity,
                    "latency_s": made.latency_s,
                }
                name = made.request.name
                if len(found) == 1 and found[0].landmarks5 is not None:
                    yaw, pitch = pose_offsets(found[0].landmarks5)
                    row["turn"] = yaw - pose[0] if name in ("left", "right") else pitch - pose[1]
                if name in LANDMARK_VIEWS:
                    target = target_points(aug, name, points)
                    field = aug._warp_field(points, target)
                    row.update(seam_measures(region, made.rgb, field.map_xy, outside_face(aug.size, points, target)))
                per_view[name][method] = row
        records.extend(per_view.values())
        if photos % 20 == 0:
            log.info("%d photos, %.0f s", photos, time.perf_counter() - started)
    report = {
        "machine": describe_machine(),
        "photos": photos,
        "gate": gate,
        "model": engine.embedder.name,
        "seconds": time.perf_counter() - started,
        "views": summarise(records, CLASSIC_VIEWS),
        "records": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    sys.stdout.write(markdown(report))


if __name__ == "__main__":
    main()
