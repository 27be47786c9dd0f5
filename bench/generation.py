"""Stable Diffusion view generation: the seed document's way against ours, in the same run.

    python -m bench.generation                         # full SD 1.5 architecture, random weights
    python -m bench.generation --model DIR             # real weights from a local folder
    python -m bench.generation --size tiny --steps 4   # a quick check of the script on a CPU

Methods, each with the same 512x512 face region, views, seeds, steps and strength:
- seed's way: one pipeline call per view, attention slicing on, prompts encoded on every call;
- ours: StableDiffusionAugmentor, all views in ONE batched call (cached prompt embeddings, the
  region encoded once, fp16 + SDPA + channels_last on CUDA), VAE decode all at once or sized
  (the default: never above the denoising peak);
- ours compiled: the same with ``torch.compile`` of the UNet (``--compile``, default on CUDA), its
  compile + warm-up time, and the first request after the warm-up against the steady state.

Every method is first warmed with its exact call (same views, steps, shapes), then timed
``--repeats`` times: the median and every run are reported, with per-stage times (CUDA events) and
per-stage peak memory from the augmentor. ``--startup`` also starts two fresh processes with the
compiled UNet, one on an empty inductor cache and one on the cache the first left, and reports
their start-up (load + compile + warm-up) and first-request times.
Compute and memory do not depend on weight values, so random weights time the real model.
Prints Markdown and writes JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe_machine
from core.augment.views import NEGATIVE_PROMPT, plan_views
from core.settings import CompileMode

log = logging.getLogger("bench.generation")
DEFAULT_VIEWS = ["left", "right", "up", "down", "smiling"]


def build_pipe(model: str | None, size: str, device: str, fp16: bool) -> Any:
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
        pipe = random_img2img_pipeline(size, seed=0).to(dtype=dtype)  # type: ignore[arg-type]
    return pipe.to(device)


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def seed_call(pipe: Any, region: np.ndarray, views: list[str], steps: int, strength: float) -> dict[str, Any]:
    """One call per view with attention slicing, as the seed document generates."""
    import torch
    from PIL import Image

    device = pipe.device.type
    init = Image.fromarray(region)
    synchronize(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for request in plan_views(views, None, 0):
        pipe(
            prompt=request.prompt,
            negative_prompt=NEGATIVE_PROMPT,
            image=init,
            strength=strength,
            num_inference_steps=steps,
            guidance_scale=7.5,
            generator=torch.Generator(device=device).manual_seed(request.seed),
            output_type="np",
        )
    synchronize(device)
    peak = int(torch.cuda.max_memory_allocated()) if device == "cuda" else None
    return {"seconds": time.perf_counter() - started, "peak_mem_bytes": peak, "stages": []}


def our_call(augmentor: Any, region: np.ndarray, views: list[str], steps: int, strength: float) -> dict[str, Any]:
    started = time.perf_counter()
    result = augmentor._run_batches(region, plan_views(views, None, 0), steps, strength)
    seconds = time.perf_counter() - started
    stats = result.stats
    assert stats.batches == [len(views)], stats.batches
    return {
        "seconds": seconds,
        "peak_mem_bytes": stats.peak_mem_bytes if stats.device == "cuda" else None,
        "stages": [s.as_record() for s in stats.stages],
    }


def timed(name: str, call: Any, repeats: int, **info: Any) -> dict[str, Any]:
    """Warm with the exact call, then ``repeats`` timed runs; the median run's stages."""
    call()
    runs = [call() for _ in range(repeats)]
    seconds = [r["seconds"] for r in runs]
    median = statistics.median(seconds)
    middle = min(runs, key=lambda r: abs(r["seconds"] - median))
    peaks = [r["peak_mem_bytes"] for r in runs if r["peak_mem_bytes"]]
    row = {
        "method": name,
        **info,
        "median_s": round(median, 3),
        "runs_s": [round(s, 3) for s in seconds],
        "peak_gb": round(max(peaks) / 1e9, 2) if peaks else None,
        "stages": middle["stages"],
    }
    log.info("%s", row)
    return row


def startup_child(args: argparse.Namespace) -> None:
    """One fresh process: load, compile, warm up, then the first request and steady requests."""
    import torch

    from core.augment.stable_diffusion import StableDiffusionAugmentor

    device = "cuda" if torch.cuda.is_available() else "cpu"
    views = args.views.split(",")
    region = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    started = time.perf_counter()
    augmentor = StableDiffusionAugmentor(
        pipeline=build_pipe(args.model, args.size, device, True),
        num_inference_steps=args.steps,
        strength=args.strength,
        compile_mode=args.compile,
        compile_cache_dir=Path(args.cache),
    )
    augmentor.default_views = tuple(views)
    augmentor.warm_up()
    startup = time.perf_counter() - started
    first = our_call(augmentor, region, views, args.steps, args.strength)["seconds"]
    steady = statistics.median(
        our_call(augmentor, region, views, args.steps, args.strength)["seconds"] for _ in range(3)
    )
    sys.stdout.write(json.dumps({"startup_s": startup, "first_s": first, "steady_s": steady}) + "\n")


def startup_runs(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
        for label in ("empty compile cache", "warm compile cache"):
            argv = [sys.executable, "-m", "bench.generation", "--startup-child", "--cache", cache]
            argv += ["--size", args.size, "--steps", str(args.steps), "--strength", str(args.strength)]
            argv += ["--views", args.views, "--compile", args.compile] + (["--model", args.model] if args.model else [])
            out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            row = {"start": label, **json.loads(out)}
            row["first_over_steady"] = row["first_s"] / row["steady_s"]
            log.info("%s", row)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="local SD 1.5 folder (default: random weights)")
    parser.add_argument("--size", choices=["full", "tiny"], default="full", help="random-weight architecture")
    parser.add_argument("--steps", type=int, default=None, help="default 20 on CUDA, 4 on a CPU (1 denoising step)")
    parser.add_argument("--strength", type=float, default=0.45)
    parser.add_argument("--views", default=",".join(DEFAULT_VIEWS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", choices=["none", "default", "max-autotune"], default=None)
    parser.add_argument("--ten", action="store_true", help="also 10 views (default on CUDA)")
    parser.add_argument("--startup", action="store_true", help="also the start-up of two fresh processes")
    parser.add_argument("--startup-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("out/bench_generation.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    from core.augment.stable_diffusion import StableDiffusionAugmentor

    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.steps = args.steps or (20 if device == "cuda" else 4)
    args.compile = args.compile or ("default" if device == "cuda" else "none")
    if args.startup_child:
        return startup_child(args)
    views = args.views.split(",")
    region = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    pipe = build_pipe(args.model, args.size, device, fp16=True)
    steps, strength, repeats = args.steps, args.strength, args.repeats

    def ours(decode_views: int = 0, compile_mode: CompileMode = "none", cache: Path | None = None) -> Any:
        return StableDiffusionAugmentor(
            pipeline=pipe,
            num_inference_steps=steps,
            strength=strength,
            decode_views=decode_views,
            compile_mode=compile_mode,
            compile_cache_dir=cache,
        )

    pipe.enable_attention_slicing()
    rows = [
        timed(
            "seed: 1 call per view + attention slicing",
            lambda: seed_call(pipe, region, views, steps, strength),
            repeats,
            views=len(views),
        )
    ]
    pipe.disable_attention_slicing()
    eager_all, eager = ours(decode_views=len(views)), ours()
    rows.append(
        timed(
            "ours: 1 batched call, decode all at once",
            lambda: our_call(eager_all, region, views, steps, strength),
            repeats,
            views=len(views),
        )
    )
    rows.append(
        timed(
            "ours: 1 batched call, sized decode",
            lambda: our_call(eager, region, views, steps, strength),
            repeats,
            views=len(views),
        )
    )
    if args.ten or device == "cuda":
        ten = (views * 2)[:10]
        all_ten = ours(decode_views=10)
        rows.append(
            timed(
                "ours: 10 views, decode all at once",
                lambda: our_call(all_ten, region, ten, steps, strength),
                repeats,
                views=10,
            )
        )
        rows.append(
            timed(
                "ours: 10 views, sized decode", lambda: our_call(eager, region, ten, steps, strength), repeats, views=10
            )
        )
    compiled_info: dict[str, Any] = {}
    if args.compile != "none":
        with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
            compiled = ours(compile_mode=args.compile, cache=Path(cache))
            compiled.default_views = tuple(views)
            started = time.perf_counter()
            compiled.warm_up()
            compiled_info["compile_and_warm_up_s"] = round(time.perf_counter() - started, 1)
            first = our_call(compiled, region, views, steps, strength)["seconds"]
            row = timed(
                f"ours + torch.compile ({args.compile})",
                lambda: our_call(compiled, region, views, steps, strength),
                repeats,
                views=len(views),
            )
            compiled_info["first_request_s"] = round(first, 3)
            compiled_info["first_over_steady"] = round(first / row["median_s"], 2)
            rows.append(row)
    startup = startup_runs(args) if args.startup and args.compile != "none" else []
    by_name = {r["method"]: r for r in rows}
    seed_s = rows[0]["median_s"]
    report = {
        "machine": describe_machine() + (f", {torch.cuda.get_device_name()}" if device == "cuda" else ""),
        "device": device,
        "dtype": str(pipe.unet.dtype).replace("torch.", ""),
        "weights": args.model or f"random ({args.size} SD 1.5 architecture)",
        "steps": steps,
        "strength": strength,
        "rows": rows,
        "speedup_vs_seed": {
            name: round(seed_s / r["median_s"], 2) for name, r in by_name.items() if r["views"] == len(views)
        },
        "compiled": compiled_info,
        "startup": startup,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    sys.stdout.write(markdown(report) + "\n")


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"machine: {report['machine']}; {report['device']} {report['dtype']}; weights: {report['weights']}",
        f"512x512, {report['steps']} steps, strength {report['strength']}; median of the runs after a warm-up call",
        "",
        "| method | views | median s | runs s | peak GB | prompt / encode / denoise / decode / to-uint8 s | stage peaks GB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        stages = " / ".join(f"{s['seconds']:.3f}" for s in r["stages"]) or "-"
        peaks = " / ".join(f"{s['peak_mem_bytes'] / 1e9:.2f}" for s in r["stages"] if s["peak_mem_bytes"]) or "-"
        runs = ", ".join(str(s) for s in r["runs_s"])
        lines.append(
            f"| {r['method']} | {r['views']} | {r['median_s']} | {runs} | {r['peak_gb']} | {stages} | {peaks} |"
        )
    lines += [
        "",
        "speed-up over the seed's way: " + ", ".join(f"{k}: {v}x" for k, v in report["speedup_vs_seed"].items()),
    ]
    if report["compiled"]:
        lines.append(f"compiled: {report['compiled']}")
    for row in report["startup"]:
        lines.append(
            f"start-up with {row['start']}: {row['startup_s']:.1f} s, first request {row['first_s']:.3f} s, "
            f"steady {row['steady_s']:.3f} s ({row['first_over_steady']:.2f}x)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
