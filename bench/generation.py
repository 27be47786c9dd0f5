"""Stable Diffusion view generation: the seed document's way against ours, in the same run.

    .venv/bin/python bench/generation.py                 # full SD 1.5 architecture, random weights
    .venv/bin/python bench/generation.py --model DIR     # real weights from a local folder

- seed's way: one pipeline call per view, attention slicing on, prompts encoded on every call;
- ours: StableDiffusionAugmentor, all views in ONE batched call, cached prompt embeddings
  (fp16, SDPA and channels_last on CUDA).
Both get the same 512x512 face region, views, seeds, steps (default 20) and strength (0.5).
Compute and memory do not depend on weight values, so random weights time the real model.
On a CPU the default is 2 steps (1 denoising step at strength 0.5): a full run would take about
10 minutes per method; on a GPU it also measures fp16 vs fp32 and 10/20/30 steps.
Prints a Markdown table and writes JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe_machine
from core.augment.views import NEGATIVE_PROMPT, plan_views

log = logging.getLogger("bench.generation")
VIEWS = ["left", "right", "up", "down", "smiling"]


class PeakMemory:
    """Peak GPU memory (CUDA) or peak resident memory above the start (CPU, sampled)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        import psutil
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            process = psutil.Process()
            base = process.memory_info().rss

            def sample() -> None:
                while not self._stop.is_set():
                    self.peak = max(self.peak, process.memory_info().rss - base)
                    self._stop.wait(0.05)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = int(torch.cuda.max_memory_allocated())
        else:
            self._stop.set()
            self._thread.join()


def build_pipe(model: str | None, device: str, fp16: bool):
    import torch

    from core.augment.sd_build import dpm_solver, random_img2img_pipeline

    dtype = torch.float16 if fp16 and device == "cuda" else torch.float32
    if model:
        from diffusers import StableDiffusionImg2ImgPipeline

        pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
            model, dtype=dtype, local_files_only=True, safety_checker=None, requires_safety_checker=False
        )
        pipe.scheduler = dpm_solver()
    else:
        pipe = random_img2img_pipeline("full", seed=0).to(dtype=dtype)
    return pipe.to(device)


def seed_way(pipe, region: np.ndarray, steps: int, strength: float, seed: int = 0, views: list[str] = VIEWS) -> float:
    """One call per view with attention slicing, as the seed document generates."""
    import torch
    from PIL import Image

    pipe.enable_attention_slicing()
    init = Image.fromarray(region)
    started = time.perf_counter()
    for request in plan_views(views, None, seed):
        pipe(
            prompt=request.prompt,
            negative_prompt=NEGATIVE_PROMPT,
            image=init,
            strength=strength,
            num_inference_steps=steps,
            guidance_scale=7.5,
            generator=torch.Generator(device=pipe.device.type).manual_seed(request.seed),
            output_type="np",
        )
    if pipe.device.type == "cuda":
        torch.cuda.synchronize()
    pipe.disable_attention_slicing()
    return time.perf_counter() - started


def our_way(pipe, region: np.ndarray, steps: int, strength: float, seed: int = 0, views: list[str] = VIEWS) -> float:
    from core.augment.stable_diffusion import StableDiffusionAugmentor

    augmentor = StableDiffusionAugmentor(pipeline=pipe, num_inference_steps=steps, strength=strength)
    started = time.perf_counter()
    result = augmentor._run_batches(region, plan_views(views, None, seed), steps, strength)
    assert result.stats.batches == [len(views)]
    return time.perf_counter() - started


def measure(name: str, fn, pipe, region, steps, strength, device) -> dict[str, Any]:
    with PeakMemory(device) as memory:
        seconds = fn(pipe, region, steps, strength, 0)
    row = {"method": name, "steps": steps, "seconds": round(seconds, 2), "peak_mem_gb": round(memory.peak / 1e9, 2)}
    log.info("%s", row)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="local SD 1.5 folder (default: random weights, full architecture)")
    parser.add_argument("--steps", type=int, default=None, help="default 20 on CUDA, 2 on CPU")
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("out/bench_generation.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    steps = args.steps or (20 if device == "cuda" else 2)
    region = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    started = time.perf_counter()
    pipe = build_pipe(args.model, device, fp16=True)
    log.info("pipeline built in %.1f s on %s (%s)", time.perf_counter() - started, device, pipe.unet.dtype)
    our_way(pipe, region, 2, args.strength, views=["frontal"])  # warm-up (kernels, allocator)
    rows = [
        measure("seed: 1 call per view + attention slicing", seed_way, pipe, region, steps, args.strength, device),
        measure("ours: 1 batched call", our_way, pipe, region, steps, args.strength, device),
    ]
    if device == "cuda":
        for extra_steps in (10, 30):
            rows.append(measure("ours: 1 batched call", our_way, pipe, region, extra_steps, args.strength, device))
        del pipe
        torch.cuda.empty_cache()
        fp32 = build_pipe(args.model, device, fp16=False)
        our_way(fp32, region, 2, args.strength, views=["frontal"])
        rows.append(measure("ours, fp32", our_way, fp32, region, steps, args.strength, device))
    ratio = rows[0]["seconds"] / rows[1]["seconds"]
    report = {
        "machine": describe_machine() + (f", {torch.cuda.get_device_name()}" if device == "cuda" else ""),
        "device": device,
        "weights": args.model or "random (SD 1.5 architecture)",
        "views": len(VIEWS),
        "resolution": 512,
        "strength": args.strength,
        "rows": rows,
        "batched_speedup": round(ratio, 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    lines = [
        f"machine: {report['machine']}; device {device}; weights: {report['weights']}",
        f"{len(VIEWS)} views, 512x512, strength {args.strength}",
        "",
        "| method | steps | seconds | peak memory (GB) |",
        "|---|---|---|---|",
        *(f"| {r['method']} | {r['steps']} | {r['seconds']} | {r['peak_mem_gb']} |" for r in rows),
        "",
        f"batched / sequential speed-up at {steps} steps: {ratio:.2f}x",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
