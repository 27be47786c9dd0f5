"""/v1/embed under load: throughput and latency at 1, 8 and 32 clients, batching on and off,
against the same embedder's raw in-process throughput (no Ray, no HTTP), in one run.

    .venv/bin/python bench/serve_load.py [--requests 192] [--batch-wait 0.2] [--out out/bench_serve_load.json]

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
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.local_serve import start_local_serve  # noqa: E402
from bench.machine import describe_machine  # noqa: E402
from core.evaluation.dataset import load_labelled_folder  # noqa: E402

log = logging.getLogger("bench.serve_load")
KEY = "bench-key"


def photos(faces: Path, count: int) -> list[bytes]:
    folder = load_labelled_folder(faces)
    return [i.enrollment.read_bytes() for i in folder.identities[:count]]


def raw_throughput(images: list[bytes], batch: int) -> float:
    """Photos per second for decode + detect + align + embed in this process, batched."""
    from core.faces.decode import decode_image
    from core.faces.loading import load_face_models
    from core.settings import Settings

    models = load_face_models(Settings())
    started = time.perf_counter()
    for start in range(0, len(images), batch):
        crops = []
        for data in images[start : start + batch]:
            rgb = decode_image(data, max_bytes=1 << 25, max_pixels=1 << 26).rgb
            crops += [models.embedder.align(rgb, f) for f in models.detector.detect(rgb)]
        models.embedder.embed(crops)
    return len(images) / (time.perf_counter() - started)


def load(client: httpx.Client, images: list[bytes], clients: int, total: int) -> dict[str, Any]:
    def one(i: int) -> float:
        started = time.perf_counter()
        response = client.post(
            "/v1/embed",
            headers={"X-API-Key": KEY},
            files=[("photos", (f"{i}.jpg", images[i % len(images)], "image/jpeg"))],
        )
        response.raise_for_status()
        return time.perf_counter() - started

    before = client.get("/v1/stats/batching", headers={"X-API-Key": KEY}).json()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = sorted(pool.map(one, range(total)))
    elapsed = time.perf_counter() - started
    after = client.get("/v1/stats/batching", headers={"X-API-Key": KEY}).json()
    batches = after["batches"] - before["batches"]
    return {
        "clients": clients,
        "requests": total,
        "throughput_rps": round(total / elapsed, 2),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        "mean_batch_size": round((after["crops"] - before["crops"]) / batches, 2) if batches else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "faces")
    parser.add_argument("--requests", type=int, default=192, help="requests per measurement")
    parser.add_argument("--batch-wait", type=float, default=0.0, help="batch_wait_timeout_s of the Embedder")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_serve_load.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    images = photos(args.faces, 32)

    raw = raw_throughput(images * 2, batch=16)
    log.info("raw in-process: %.2f photos/s", raw)

    import ray
    from ray import serve

    from core.settings import Settings
    from serve.app import compose
    from serve.config import deployment_options

    port = start_local_serve()
    rows = []
    data_dir = tempfile.mkdtemp(prefix="manyangles-bench-")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            for batching, max_batch in (("on", 32), ("off", 1)):
                options = deployment_options()
                options["Embedder"]["user_config"] = {
                    "max_batch_size": max_batch,
                    "batch_wait_timeout_s": args.batch_wait,
                }
                settings = Settings(data_dir=data_dir, api_key=KEY)
                serve.run(compose(settings, options), name="bench", route_prefix="/")
                load(client, images, 4, 16)  # warm-up
                for clients in (1, 8, 32):
                    total = args.requests if clients > 1 else max(16, args.requests // 4)
                    row: dict[str, Any] = {"batching": batching, **load(client, images, clients, total)}
                    row["vs_raw"] = round(row["throughput_rps"] / raw, 3)
                    log.info("%s", row)
                    rows.append(row)
    finally:
        serve.shutdown()
        ray.shutdown()
    report = {"machine": describe_machine(), "raw_in_process_photos_per_s": round(raw, 2), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    lines = [
        f"machine: {report['machine']}",
        f"raw in-process (decode + detect + align + embed, batches of 16): {raw:.2f} photos/s",
        "",
        "| batching | clients | throughput (req/s) | vs raw | p50 (ms) | p95 (ms) | mean batch |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['batching']} | {r['clients']} | {r['throughput_rps']} | {100 * r['vs_raw']:.0f}% | {r['p50_ms']} | "
            f"{r['p95_ms']} | {r['mean_batch_size']} |"
            for r in rows
        ),
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
