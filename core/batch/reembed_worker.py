"""The model side of a re-embedding: stored images in, one vector per image out.

``ReembedWorker`` is the callable class Ray Data's ``map_batches`` runs in its actors (and the
single-process loop calls directly). It reads each image (a file of the data dir, or PostgreSQL's row), detects every face,
keeps the one where the image's face was found before (largest IoU with the stored box of another
model; the largest face when there is none), and embeds it. An image it cannot embed gets the reason
instead, so the job records it and never retries it forever.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ManyAnglesError, PersonNotFound
from core.faces.types import Face
from core.settings import Settings
from core.store.gallery import GalleryStore
from core.store.model_versions import EmbeddedImage, WorkItem

log = logging.getLogger(__name__)
NO_BOX = (float("nan"),) * 4


def items_to_rows(items: list[WorkItem]) -> list[dict[str, Any]]:
    """Work items as plain rows (what ``ray.data.from_items`` takes)."""
    return [{"image_id": w.image_id, "path": w.path, "source": w.source, "bbox": list(w.bbox or NO_BOX)} for w in items]


def rows_to_results(batch: dict[str, np.ndarray]) -> list[EmbeddedImage]:
    """A result batch (columns) back as records for the store."""
    out = []
    for i in range(len(batch["image_id"])):
        ok = bool(batch["ok"][i])
        out.append(
            EmbeddedImage(
                image_id=int(batch["image_id"][i]),
                source=str(batch["source"][i]),
                vector=np.asarray(batch["vector"][i], np.float32) if ok else None,
                det_score=float(batch["det_score"][i]),
                bbox=tuple(float(v) for v in batch["bbox"][i]),  # type: ignore[arg-type]
                reason=str(batch["reason"][i]),
            )
        )
    return out


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pick_face(faces: list[Face], before: tuple[float, ...]) -> int:
    """The index of the face at the stored box (largest first when there is no box)."""
    if not faces or any(np.isnan(before)):
        return 0
    return int(np.argmax([_iou(f.bbox, before) for f in faces]))


class ReembedWorker:
    def __init__(self, settings: Settings) -> None:
        from core.faces.pipeline import FacePipeline

        self.data_dir = Path(settings.data_dir)
        # PostgreSQL: the image bytes are rows, read from any node; SQLite: files of the data dir
        self.blobs = GalleryStore.from_settings(settings).blobs if settings.store_url else None
        self.pipeline = FacePipeline(settings, workers=1)  # in this process (one per actor)
        self.model = self.pipeline.info.name
        self.dim = self.pipeline.info.dim

    def _read(self, path: str) -> bytes:
        return self.blobs.read(path) if self.blobs is not None else (self.data_dir / path).read_bytes()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["image_id"])
        photos: list[bytes | None] = []
        for path in batch["path"]:
            try:
                photos.append(self._read(str(path)))
            except (OSError, PersonNotFound):
                photos.append(None)
        readable = [i for i, p in enumerate(photos) if p is not None]
        analyzed = self.pipeline.analyze_many([(photos[i], None) for i in readable])  # type: ignore[misc]
        vectors = np.zeros((n, self.dim), np.float32)
        ok = np.zeros(n, bool)
        scores = np.zeros(n, np.float32)
        boxes = np.zeros((n, 4), np.float32)
        reasons = np.array(["image file missing"] * n, dtype=object)
        for i, result in zip(readable, analyzed):
            if isinstance(result, ManyAnglesError):
                reasons[i] = result.code
                continue
            if not result.faces:
                reasons[i] = "no_face"
                continue
            chosen = result.faces[pick_face([f.face for f in result.faces], tuple(batch["bbox"][i]))]
            vectors[i], ok[i], scores[i], reasons[i] = chosen.vector, True, chosen.face.score, ""
            boxes[i] = chosen.face.bbox
        return {
            "image_id": np.asarray(batch["image_id"], np.int64),
            "source": np.asarray(batch["source"], dtype=object),
            "ok": ok,
            "vector": vectors,
            "det_score": scores,
            "bbox": boxes,
            "reason": reasons,
        }
