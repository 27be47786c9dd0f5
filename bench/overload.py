"""Overload: 16, 32 and 64 concurrent clients against the API with load shedding (identify, and
one enrollment in eight): latency of what succeeds, share and speed of the 503s, timeouts, and
whether every 201 enrollment (and no refused one) is in the gallery.

    .venv/bin/python bench/overload.py [--rounds 3] [--out out/bench_overload.json]

Starts its own local Ray and Serve application on 127.0.0.1 (CPU layout) and stops it after.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.local_serve import start_local_serve  # noqa: E402
from bench.machine import describe_machine  # noqa: E402

log = logging.getLogger("bench.overload")
KEY = "bench-key"
AUTH = {"X-API-Key": KEY}


def enrolled_names(base_url: str) -> set[str]:
    """Every enrolled person's name, page by page."""
    names: set[str] = set()
    offset: int | None = 0
    with httpx.Client(base_url=base_url, timeout=60) as http:
        while offset is not None:
            page = http.get("/v1/persons", headers=AUTH, params={"offset": offset, "limit": 500}).json()
            names |= {p["name"] for p in page["persons"]}
            offset = page["next_offset"]
    return names


def burst(base_url: str, faces: Path, clients: int, rounds: int, tag: str) -> dict[str, Any]:
    probe = (faces / "Barack_Obama" / "2.jpg").read_bytes()
    enrollee = (faces / "Angelina_Jolie" / "1.jpg").read_bytes()
    results: list[tuple[str, str, int, float]] = []  # (kind, name, status, seconds)
    barrier = threading.Barrier(clients)

    def client(i: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as http:
            barrier.wait()
            for r in range(rounds):
                started = time.perf_counter()
                name = f"{tag} {i}-{r}"
                try:
                    if i % 8 == 0:
                        response = http.post(
                            "/v1/persons",
                            headers=AUTH,
                            data={"name": name, "force": "true"},  # the same face under many names
                            files={"photo": ("p.jpg", enrollee, "image/jpeg")},
                        )
                        kind = "enroll"
                    else:
                        response = http.post(
                            "/v1/identify", headers=AUTH, files={"photo": ("q.jpg", probe, "image/jpeg")}
                        )
                        kind = "identify"
                    status = response.status_code
                except httpx.TimeoutException:
                    kind, status = "timeout", 0
                results.append((kind, name, status, time.perf_counter() - started))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ok = sorted(s for _, _, status, s in results if status in (200, 201))
    shed = sorted(s for _, _, status, s in results if status == 503)
    persons = enrolled_names(base_url)
    lost = [n for k, n, status, _ in results if k == "enroll" and status == 201 and n not in persons]
    ghosts = [n for k, n, status, _ in results if k == "enroll" and status != 201 and n in persons]
    return {
        "clients": clients,
        "requests": len(results),
        "wall_s": round(wall, 1),
        "succeeded": len(ok),
        "p50_s": round(statistics.median(ok), 2) if ok else None,
        "p95_s": round(ok[int(0.95 * (len(ok) - 1))], 2) if ok else None,
        "max_success_s": round(ok[-1], 2) if ok else None,
        "shed_503": len(shed),
        "shed_share": round(len(shed) / len(results), 3),
        "max_503_s": round(shed[-1], 3) if shed else None,
        "timeouts": sum(1 for k, *_ in results if k == "timeout"),
        "other_errors": sum(1 for _, _, status, _ in results if status not in (0, 200, 201, 503)),
        "enrollments_lost": len(lost),
        "refused_enrollments_stored": len(ghosts),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "faces")
    parser.add_argument("--rounds", type=int, default=3, help="requests per client, one after another")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_overload.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import ray
    from ray import serve

    from core.settings import Settings
    from serve.app import compose
    from serve.config import deployment_options

    port = start_local_serve()
    rows = []
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="manyangles-bench-")), api_key=KEY)
    base = f"http://127.0.0.1:{port}"
    try:
        serve.run(compose(settings, deployment_options()), name="bench", route_prefix="/")
        burst(base, args.faces, 4, 2, "warm-up")
        for clients in (16, 32, 64):
            row = burst(base, args.faces, clients, args.rounds, f"c{clients}")
            log.info("%s", row)
            rows.append(row)
    finally:
        serve.shutdown()
        ray.shutdown()
    report = {"machine": describe_machine(), "budget_s": settings.queue_budget_s, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    head = "| clients | requests | ok | p50 s | p95 s | max ok s | 503 share | max 503 s | timeouts | lost |"
    lines = [f"machine: {report['machine']}; queue_budget_s {settings.queue_budget_s}", "", head, "|---" * 10 + "|"]
    lines += [
        f"| {r['clients']} | {r['requests']} | {r['succeeded']} | {r['p50_s']} | {r['p95_s']} | {r['max_success_s']} | "
        f"{100 * r['shed_share']:.0f}% | {r['max_503_s']} | {r['timeouts']} | "
        f"{r['enrollments_lost'] + r['refused_enrollments_stored']} |"
        for r in rows
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
