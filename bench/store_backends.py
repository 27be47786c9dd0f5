"""Enrollment and identification on SQLite and on PostgreSQL, side by side in one run.

    .venv/bin/python bench/store_backends.py [--people 10] [--reps 3] [--views 5] [--out out/bench_store_backends.json]

Two in-process services (core/service.py, the code the HTTP API runs) over the same loaded
models: one on SQLite in a temporary data dir, one on a PostgreSQL server this script starts
(initdb into a temporary folder, fsync on, loopback TCP: tests/pg_server.py). Per person, in
alternating order: enroll with ``--views`` classic views on each, then identify a second photo
of them on each. Per person the median of ``--reps`` (each rep enrolls under a new name); the
table gives medians over people and the ratio PostgreSQL / SQLite.

Targets (issue 41): enrollment with 5 classic views on PostgreSQL <= 1.15x SQLite; identify
<= 1.05x (the search index is in memory on both; what differs is the store's reads and the
timing row each call writes).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bench.machine import describe_machine  # noqa: E402

log = logging.getLogger("bench.store_backends")
FACES = REPO.parent / "shared" / "faces"


def people_with_two_photos(count: int) -> list[tuple[bytes, bytes]]:
    by_person: dict[str, list[str]] = {}
    with (FACES / "MANIFEST.csv").open() as handle:
        for row in csv.DictReader(handle):
            by_person.setdefault(row["identity"], []).append(row["file"])
    chosen = [files for _, files in sorted(by_person.items()) if len(files) >= 2][:count]
    return [((FACES / files[0]).read_bytes(), (FACES / files[1]).read_bytes()) for files in chosen]


def services(folder: Path, url: str) -> dict[str, Any]:
    from core.augment.viewmaker import LocalViews
    from core.faces.active import ActiveModelFaces
    from core.faces.loading import load_face_models
    from core.faces.recognition import FaceEngine
    from core.service import ManyAnglesService
    from core.settings import Settings
    from core.store.gallery import GalleryStore

    models = load_face_models(Settings())
    made = {}
    for name, store_url in (("sqlite", ""), ("postgresql", url)):
        settings = Settings(data_dir=folder / name, store_url=store_url)
        store = GalleryStore.from_settings(settings)
        faces = ActiveModelFaces(settings, store, in_service=False, engine=FaceEngine(models))
        made[name] = ManyAnglesService(settings, faces, store, LocalViews(settings, faces, None))
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_store_backends.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("core").setLevel(logging.WARNING)
    from pg_server import PostgresServer

    with tempfile.TemporaryDirectory(prefix="manyangles-bench-") as tmp:
        server = PostgresServer(Path(tempfile.mkdtemp(prefix="manyangles-pg-")), fsync=True).start()
        try:
            made = services(Path(tmp), server.new_database("bench"))
            rows = run(made, args)
            laps = identify_laps(made)
        finally:
            server.stop()
    summary = summarise(rows, args) | {"identify_laps_s": laps}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "people": rows}, indent=2))
    sys.stdout.write(table(summary) + "\n")
    return 0


def run(made: dict[str, Any], args: argparse.Namespace) -> list[dict[str, float]]:
    rows = []
    for index, (photo, probe) in enumerate(people_with_two_photos(args.people)):
        times: dict[str, list[float]] = {}
        for rep in range(args.reps + 1):  # rep 0 warms both up (first person only counts it out)
            order = ["sqlite", "postgresql"] if (index + rep) % 2 == 0 else ["postgresql", "sqlite"]
            for name in order:
                service = made[name]
                started = time.perf_counter()
                service.enroll(
                    f"p{index}-r{rep}", photo, augment=True, num_variations=args.views, face="largest", force=True
                )
                enrolled = time.perf_counter() - started
                started = time.perf_counter()
                service.identify(probe)
                identified = time.perf_counter() - started
                started = time.perf_counter()
                service.identify(probe)
                unchanged = time.perf_counter() - started
                if rep:
                    times.setdefault(f"{name}_enroll_s", []).append(enrolled)
                    times.setdefault(f"{name}_identify_s", []).append(identified)
                    times.setdefault(f"{name}_identify_unchanged_s", []).append(unchanged)
        rows.append({key: statistics.median(values) for key, values in times.items()})
        log.info("person %d: %s", index, {k: round(v, 4) for k, v in rows[-1].items()})
    return rows


def identify_laps(made: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per backend, the median of each identify stage its timing rows recorded: ``analyze``
    (decode, detect, embed: no store work in process but the active model's read) and ``search``
    (thresholds, the refresh, the search, the names)."""
    out = {}
    for name, service in made.items():
        runs = [r["timings_s"] for r in service.store.search_runs() if r["kind"] == "identify"]
        out[name] = {lap: statistics.median(r[lap] for r in runs) for lap in ("analyze", "search", "total")}
    return out


def summarise(rows: list[dict[str, float]], args: argparse.Namespace) -> dict[str, object]:
    med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    return {
        "machine": describe_machine(),
        "people": len(rows),
        "reps": args.reps,
        "views": args.views,
        **med,
        "enroll_ratio": med["postgresql_enroll_s"] / med["sqlite_enroll_s"],
        "identify_ratio": med["postgresql_identify_s"] / med["sqlite_identify_s"],
        "identify_unchanged_ratio": med["postgresql_identify_unchanged_s"] / med["sqlite_identify_unchanged_s"],
    }


def table(s: dict[str, object]) -> str:
    return "\n".join(
        [
            f"machine: {s['machine']}; {s['people']} people x {s['reps']} reps, medians",
            "| | SQLite | PostgreSQL | ratio | target |",
            "|---|---|---|---|---|",
            f"| enroll + {s['views']} classic views | {s['sqlite_enroll_s']:.3f} s | {s['postgresql_enroll_s']:.3f} s "
            f"| {s['enroll_ratio']:.2f}x | <= 1.15x |",
            f"| identify, the first after that enrollment | {s['sqlite_identify_s']:.4f} s "
            f"| {s['postgresql_identify_s']:.4f} s | {s['identify_ratio']:.2f}x | <= 1.05x |",
            f"| identify again, gallery unchanged | {s['sqlite_identify_unchanged_s']:.4f} s "
            f"| {s['postgresql_identify_unchanged_s']:.4f} s | {s['identify_unchanged_ratio']:.2f}x | <= 1.05x |",
            "",
            "identify's recorded stages (median s): "
            + "; ".join(
                f"{name}: " + ", ".join(f"{lap} {value:.4f}" for lap, value in laps.items())
                for name, laps in s["identify_laps_s"].items()  # type: ignore[attr-defined]
            ),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
