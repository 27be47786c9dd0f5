"""Model versions in the gallery: the ``models`` table, the active-model pointer and re-embedding.

A model is *building* while a re-embedding job fills its vectors, *active* when identification
uses it (one at a time: the partial unique index ``models_one_active`` is the pointer) and
*retired* after a switch; ``prune`` removes a retired model's vectors. The switch flips the pointer
in one transaction and only when every image has a vector of the new model (or was recorded as
one it cannot embed), so identification never sees a half-built gallery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from core.errors import ModelMismatch, ModelNotFound, ModelNotReady, NotCalibrated
from core.store.db import Connection
from core.store.gallery import GalleryStore
from core.store.removals import prune_removals
from core.store.sqlutil import utc_now

ModelStatus = Literal["building", "active", "retired"]


@dataclass(frozen=True)
class ModelRecord:
    name: str
    dim: int
    status: ModelStatus
    spec: dict[str, Any]  # settings that load it (embedder, detector, insightface_pack)
    thresholds: dict[str, float]  # matching rule -> identification threshold; "gate" -> gate
    created_at: str
    activated_at: str | None
    num_embeddings: int = 0


@dataclass(frozen=True)
class WorkItem:
    """An image still to embed with a model, and where its face was found before."""

    image_id: int
    person_id: int
    path: str
    source: str
    bbox: tuple[float, float, float, float] | None  # from another model's embedding of it


@dataclass(frozen=True, eq=False)
class EmbeddedImage:
    """A re-embedding result: a vector for the image, or the reason there is none."""

    image_id: int
    source: str
    vector: np.ndarray | None
    det_score: float = 0.0
    bbox: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    reason: str = ""


MODEL_COLUMNS = "m.name, m.dim, m.status, m.spec_json, m.thresholds_json, m.created_at, m.activated_at"


def model_record(row: tuple[Any, ...]) -> ModelRecord:
    return ModelRecord(row[0], int(row[1]), row[2], json.loads(row[3]), json.loads(row[4]), row[5], row[6], int(row[7]))


def list_models(store: GalleryStore) -> list[ModelRecord]:
    with store.reader() as conn:
        rows = conn.execute(
            f"SELECT {MODEL_COLUMNS}, (SELECT COUNT(*) FROM embeddings e WHERE e.model = m.name) "
            "FROM models m ORDER BY m.created_at, m.name"
        ).fetchall()
    return [model_record(r) for r in rows]


def get_model(store: GalleryStore, name: str) -> ModelRecord | None:
    return next((m for m in list_models(store) if m.name == name), None)


def active_model(store: GalleryStore) -> ModelRecord | None:
    """The model identification uses (no vector count: this is read on every request)."""
    with store.reader() as conn:
        row = conn.execute(f"SELECT {MODEL_COLUMNS}, 0 FROM models m WHERE m.status = 'active'").fetchone()
    return model_record(row) if row else None


def register_model(
    store: GalleryStore,
    name: str,
    dim: int,
    spec: dict[str, Any],
    thresholds: dict[str, float],
    activate_if_none: bool = False,
) -> ModelRecord:
    """Record a model (its spec and shipped thresholds are refreshed; its status is kept).

    ``activate_if_none``: make it the active model when there is none yet (a service's first start:
    its configured model, which made the gallery's vectors before models had versions)."""
    now = utc_now()
    with store.write_lock() as conn:
        conn.execute(
            "INSERT INTO models(name, dim, status, spec_json, thresholds_json, created_at) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(name) DO UPDATE SET dim = excluded.dim, spec_json = excluded.spec_json, "
            "thresholds_json = CASE WHEN models.status = 'active' THEN models.thresholds_json "
            "ELSE excluded.thresholds_json END",
            (name, dim, "building", json.dumps(spec, sort_keys=True), json.dumps(thresholds, sort_keys=True), now),
        )
        if activate_if_none and conn.execute("SELECT 1 FROM models WHERE status = 'active'").fetchone() is None:
            conn.execute("UPDATE models SET status = 'active', activated_at = ? WHERE name = ?", (now, name))
    record = get_model(store, name)
    assert record is not None
    return record


def work_list(store: GalleryStore, model: str) -> list[WorkItem]:
    """Images with no vector of ``model`` and not recorded as ones it cannot embed."""
    with store.reader() as conn:
        rows = conn.execute(
            "SELECT i.id, i.person_id, i.path, i.source, e.bbox_x1, e.bbox_y1, e.bbox_x2, e.bbox_y2 "
            "FROM images i LEFT JOIN embeddings e ON e.id = (SELECT MIN(f.id) FROM embeddings f WHERE f.image_id = i.id) "
            "WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.image_id = i.id AND e.model = ?) "
            "AND NOT EXISTS (SELECT 1 FROM reembed_skips s WHERE s.image_id = i.id AND s.model = ?) ORDER BY i.id",
            (model, model),
        ).fetchall()
    return [WorkItem(r[0], r[1], r[2], r[3], None if r[4] is None else (r[4], r[5], r[6], r[7])) for r in rows]


def write_embedded(store: GalleryStore, model: str, results: list[EmbeddedImage]) -> tuple[int, int]:
    """One batch in one transaction; an image embedded before (a resumed job) or deleted since
    is left out. Returns (vectors written, images recorded as not embeddable)."""
    written = skipped = 0
    now = utc_now()
    with store.write_lock() as conn:
        for r in results:
            if r.vector is None:
                skipped += conn.execute(
                    "INSERT INTO reembed_skips(image_id, model, reason, created_at) "
                    "SELECT id, ?, ?, ? FROM images WHERE id = ? ON CONFLICT DO NOTHING",
                    (model, r.reason, now, r.image_id),
                ).rowcount
                continue
            vector = np.ascontiguousarray(r.vector, dtype="<f4").ravel()
            written += conn.execute(
                "INSERT INTO embeddings(person_id, image_id, source, model, dim, vector, det_score, "
                "bbox_x1, bbox_y1, bbox_x2, bbox_y2, created_at) "
                "SELECT person_id, id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM images WHERE id = ? ON CONFLICT DO NOTHING",
                (r.source, model, int(vector.shape[0]), vector.tobytes(), float(r.det_score), *r.bbox, now, r.image_id),
            ).rowcount
    return written, skipped


def _check_complete(conn: Connection, name: str, allow_missing: bool) -> None:
    remaining = conn.execute(
        "SELECT COUNT(*) FROM images i WHERE NOT EXISTS "
        "(SELECT 1 FROM embeddings e WHERE e.image_id = i.id AND e.model = ?) "
        "AND NOT EXISTS (SELECT 1 FROM reembed_skips s WHERE s.image_id = i.id AND s.model = ?)",
        (name, name),
    ).fetchone()[0]
    if remaining:
        raise ModelNotReady(f"{remaining} image(s) have no {name} vector yet; run `manyangles reembed` first")
    if allow_missing:
        return
    lost = conn.execute(
        "SELECT COUNT(*) FROM persons p WHERE NOT EXISTS "
        "(SELECT 1 FROM embeddings e WHERE e.person_id = p.id AND e.model = ?)",
        (name,),
    ).fetchone()[0]
    if lost:
        raise ModelNotReady(
            f"{lost} person(s) would have no {name} vector (it found no face in any of their images); "
            "switch with --allow-missing to accept that they can no longer be identified"
        )


def activate_model(
    store: GalleryStore, name: str, thresholds: dict[str, float], allow_missing: bool = False
) -> ModelRecord:
    """The switch: when every image has a ``name`` vector, flip the pointer in one transaction."""
    if not thresholds:
        raise NotCalibrated(f"model {name} has no identification threshold; calibrate it before the switch")
    with store.write_lock() as conn:
        if conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is None:
            raise ModelNotFound(f"no model named {name!r}; `manyangles models` lists them")
        _check_complete(conn, name, allow_missing)
        now = utc_now()
        conn.execute("UPDATE models SET status = 'retired' WHERE status = 'active' AND name != ?", (name,))
        conn.execute(
            "UPDATE models SET status = 'active', activated_at = ?, thresholds_json = ? WHERE name = ?",
            (now, json.dumps(thresholds, sort_keys=True), name),
        )
    record = get_model(store, name)
    assert record is not None
    return record


def prune_model(store: GalleryStore, name: str) -> int:
    """Remove every vector of a model that is not the active one; returns how many."""
    with store.write_lock() as conn:
        row = conn.execute("SELECT status FROM models WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ModelNotFound(f"no model named {name!r}; `manyangles models` lists them")
        if row[0] == "active":
            raise ModelMismatch(f"{name} is the active model; switch to another one before pruning it")
        removed = conn.execute("DELETE FROM embeddings WHERE model = ?", (name,)).rowcount
        conn.execute("DELETE FROM reembed_skips WHERE model = ?", (name,))
        conn.execute("UPDATE models SET status = 'retired' WHERE name = ?", (name,))
    prune_removals(store)
    store.db.scrub()
    return int(removed)


EMBEDDINGS_AFTER_SQL = "SELECT id, person_id, source = 'original', dim, vector FROM embeddings WHERE model || '' = ? AND id > ? ORDER BY id"


def embeddings_after(
    store: GalleryStore, model: str, after_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ids, person ids, is-original flags, vectors) of ``model``'s embeddings with id > after_id.

    Every identification asks this of its gallery: it reads the rowid range past ``after_id``
    (``model || ''`` keeps the planner off the model index, which would walk every one of the model's
    entries to find the few new ones)."""
    with store.reader() as conn:
        return read_embeddings_after(conn, model, after_id)


def read_embeddings_after(
    conn: Connection, model: str, after_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``embeddings_after`` on an open connection (inside a write transaction: what committed
    since a search read the gallery)."""
    rows = conn.execute(EMBEDDINGS_AFTER_SQL, (model, after_id)).fetchall()
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros((0, 0), np.float32)
    dim = int(rows[0][3])
    vectors = np.frombuffer(b"".join(r[4] for r in rows), dtype="<f4").reshape(len(rows), dim)
    return (
        np.fromiter((r[0] for r in rows), np.int64, len(rows)),
        np.fromiter((r[1] for r in rows), np.int64, len(rows)),
        np.fromiter((bool(r[2]) for r in rows), bool, len(rows)),
        vectors.astype(np.float32),
    )


def resolve_model(store: GalleryStore, name: str) -> ModelRecord:
    """A model by its name, or by its kind (arcface, dlib, insightface) when one model has it."""
    models = list_models(store)
    exact = [m for m in models if m.name == name]
    kind = [m for m in models if m.spec.get("embedder") == name]
    found = exact or kind
    if len(found) != 1:
        known = ", ".join(m.name for m in models) or "none"
        raise ModelNotFound(f"no single model named {name!r} (models: {known})")
    return found[0]
