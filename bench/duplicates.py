"""How long ``manyangles duplicates`` takes on a large gallery, and that it finds what was planted.

The store is bench/gallery_scale.py's (real schema, random unit vectors, half the persons with
10 views), plus ``--planted`` persons whose one photo is a copy of an enrolled person's original
with a little noise (cosine ~0.97 to it): faces enrolled twice. Random 128-D vectors never come
near the threshold, so every pair found should be a planted one. Timed: the whole search
(reading the vectors, the in-memory search, every original photo searched), at the shipped
top2 threshold and views offset of dlib-resnet-v1-flip.

With ``--faces DIR --cache CACHE`` (the embeddings of ``manyangles eval DIR --cache CACHE``) it
measures on real faces instead: every identity enrolled from its first photo (with or without
its classic views) and, as a second person, from its next photo with a face: how many of those
copies the audit pairs with their person, and how many pairs of different people it reports.

With ``--as-job`` the search runs as the API's background search runs it (``audit_duplicates``:
the job's progress written to the jobs table, the pairs stored), and a reader polls the job as
the console does: how soon it shows the photos to search, and the longest wait between two
progress updates it saw while the photos were searched.

    python -m bench.duplicates --persons 5000 50000 [--as-job]
    python -m bench.duplicates --faces ../shared/faces --cache out/eval_cache
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.gallery_scale import build_store
from bench.machine import describe_machine
from core.faces.embedders.dlib_embedder import DLIB_DEFAULT_THRESHOLDS, DLIB_DEFAULT_VIEWS_OFFSETS
from core.search.duplicates import audit_duplicates, find_duplicates
from core.store.audits import AuditSearch, latest_audit
from core.store.gallery import GalleryStore
from core.store.jobs import JobRecord, list_jobs

log = logging.getLogger("bench.duplicates")
MODEL = "dlib-resnet-v1-flip"


NOW = "2026-11-28T00:00:00.000+00:00"
Entries = list[tuple[str, np.ndarray]]  # (source, vector) of one person


def add_persons(conn: sqlite3.Connection, persons: list[tuple[int, str, Entries]]) -> None:
    """Rows only (no image files): each (id, name, entries) with an image row per entry."""
    image_id = int(conn.execute("SELECT coalesce(max(id), 0) FROM images").fetchone()[0])
    conn.execute("BEGIN")
    for pid, name, entries in persons:
        conn.execute("INSERT INTO persons(id, name, created_at) VALUES (?, ?, ?)", (pid, name, NOW))
        for source, vector in entries:
            image_id += 1
            sha = f"{image_id:064x}"
            conn.execute(
                "INSERT INTO images(id, person_id, sha256, path, source, display_name, mime, width, height, "
                "num_bytes, generator, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (image_id, pid, sha, f"images/{sha[:2]}/{sha}.png", source, f"{source}.png", "image/png", 256, 256,
                 50_000, None, NOW),
            )  # fmt: skip
            conn.execute(
                "INSERT INTO embeddings(person_id, image_id, source, model, dim, vector, det_score, bbox_x1, bbox_y1, "
                "bbox_x2, bbox_y2, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    pid,
                    image_id,
                    source,
                    MODEL,
                    len(vector),
                    vector.astype("<f4").tobytes(),
                    1.0,
                    0.0,
                    0.0,
                    1.0,
                    1.0,
                    NOW,
                ),
            )
    conn.execute("COMMIT")


def plant(db: Path, persons: int, planted: int, seed: int = 1) -> set[tuple[int, int]]:
    """``planted`` new persons, each a noisy copy of a random enrolled person's original."""
    rng = np.random.default_rng(seed)
    conn = sqlite3.connect(db, isolation_level=None)
    victims = rng.choice(np.arange(1, persons + 1), planted, replace=False).tolist()
    rows = conn.execute(
        f"SELECT person_id, vector FROM embeddings WHERE source = 'original' AND person_id IN ({','.join('?' * planted)})",
        victims,
    ).fetchall()
    copies: list[tuple[int, str, Entries]] = []
    pairs = set()
    for offset, (victim, blob) in enumerate(rows, start=1):
        vector = np.frombuffer(blob, "<f4") + rng.standard_normal(128).astype("<f4") * 0.02
        pid = persons + offset
        copies.append((pid, f"copy {pid}", [("original", vector / np.linalg.norm(vector))]))
        pairs.add((int(victim), pid))
    add_persons(conn, copies)
    conn.close()
    return pairs


def write_persons(data_dir: Path, persons: list[tuple[str, Entries]]) -> None:
    """A store holding these persons (name, entries), ids 1.. in order."""
    GalleryStore(data_dir)  # the real schema
    conn = sqlite3.connect(data_dir / "gallery.db", isolation_level=None)
    add_persons(conn, [(pid, name, entries) for pid, (name, entries) in enumerate(persons, start=1)])
    conn.close()


class JobWatcher:
    """Polls the newest duplicates job every POLL_S, as the console's progress bar would."""

    POLL_S = 0.2

    def __init__(self, store: GalleryStore) -> None:
        self.store = store
        self.seen: list[tuple[float, JobRecord]] = []  # (perf_counter, the job as read then)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.POLL_S):
            jobs = list_jobs(self.store, limit=1, kind="duplicates")
            if jobs:
                self.seen.append((time.perf_counter(), jobs[0]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self, started: float) -> str:
        seen = self.seen
        counted = next((t for t, j in seen if j.total), None)
        searching = [(t, j.done) for t, j in seen if j.done and j.state == "running"]
        changes = [t for (t, done), (_, before) in zip(searching[1:], searching) if done != before]
        gaps = [b - a for a, b in zip(changes, changes[1:])]
        return (
            f"photos to search shown after {counted - started:.1f} s; "
            if counted is not None
            else "photos to search never shown; "
        ) + (f"longest wait between progress updates while searching {max(gaps):.1f} s" if gaps else "no updates seen")


def real_faces(args: argparse.Namespace) -> None:
    from bench.cached_study import cached_eval_data
    from core.service import ManyAnglesService
    from core.settings import Settings

    settings = Settings()
    data = cached_eval_data(args, settings, ManyAnglesService.from_settings(settings))
    threshold, offset = DLIB_DEFAULT_THRESHOLDS["top2"], DLIB_DEFAULT_VIEWS_OFFSETS["top2"]
    log.info("| enrolled | persons | copies paired with their person | pairs of two different people |")
    log.info("|---|---|---|---|")
    for views in (False, True):
        persons: list[tuple[str, Entries]] = []
        identity_of: list[int] = []
        for index, name in enumerate(data.identities):
            made = [(f"augmented_{v.split(':')[-1]}", vec) for v, vec in data.views[index].items()] if views else []
            persons.append((name, [("original", data.originals[index]), *made]))
            identity_of.append(index)
        for index, name in enumerate(data.identities):
            found = np.flatnonzero((data.probe_identity == index) & data.probe_found)
            if found.size:
                persons.append((f"{name} (copy)", [("original", data.probe_vectors[found[0]])]))
                identity_of.append(index)
        copies = len(persons) - len(data.identities)
        with tempfile.TemporaryDirectory() as tmp:
            write_persons(Path(tmp), persons)
            pairs = find_duplicates(GalleryStore(Path(tmp)), MODEL, "top2", threshold, offset)
        same = sum(identity_of[p.person_id - 1] == identity_of[p.other_id - 1] for p in pairs)
        distinct = len(persons) * (len(persons) - 1) // 2 - copies
        log.info(
            "| first photo%s; a copy from the next photo | %d | %d of %d (%.0f%%) | %d of %d pairs |",
            " + its classic views" if views else "", len(persons), same, copies, 100 * same / copies,
            len(pairs) - same, distinct,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--planted", type=int, default=20)
    parser.add_argument("--faces", dest="dir", type=Path, default=None, help="a labelled folder: real faces")
    parser.add_argument("--cache", type=Path, default=None, help="with --faces: the cache of `manyangles eval`")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--as-job", action="store_true", help="run it as the API's background search does")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("%s", describe_machine())
    if args.dir is not None:
        if args.cache is None:
            parser.error("--faces needs --cache")
        real_faces(args)
        return
    threshold, offset = DLIB_DEFAULT_THRESHOLDS["top2"], DLIB_DEFAULT_VIEWS_OFFSETS["top2"]
    log.info("| persons | embeddings | search | seconds | pairs found | planted found |")
    log.info("|---|---|---|---|---|---|")
    for persons in args.persons:
        with tempfile.TemporaryDirectory() as tmp:
            build_store(Path(tmp), persons)
            planted = plant(Path(tmp) / "gallery.db", persons, args.planted)
            store = GalleryStore(Path(tmp))
            with store.reader() as conn:
                embeddings = int(conn.execute("SELECT count(*) FROM embeddings").fetchone()[0])
            started = time.perf_counter()
            if args.as_job:
                watcher = JobWatcher(store)
                found = audit_duplicates(store, AuditSearch(MODEL, "top2", threshold, offset))
                seconds = time.perf_counter() - started
                watcher.stop()
                stored = latest_audit(store)
                assert stored is not None and list(stored.pairs) == found
                log.info("as a job: %s", watcher.summary(started))
            else:
                found = find_duplicates(store, MODEL, "top2", threshold, offset)
                seconds = time.perf_counter() - started
            hits = {(p.person_id, p.other_id) for p in found} & planted
            kind = "exact" if embeddings <= 50_000 else "HNSW + exact re-rank"
            log.info(
                "| %d | %d | %s | %.1f | %d | %d of %d |",
                persons + args.planted, embeddings, kind, seconds, len(found), len(hits), len(planted),
            )  # fmt: skip


if __name__ == "__main__":
    main()
