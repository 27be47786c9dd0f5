"""Stable Diffusion view generation: the seed document's way against ours, in the same run.

    python -m bench.generation                         # full SD 1.5 architecture, random weights
    python -m bench.generation --model DIR             # real weights from a local folder
    python -m bench.generation --size tiny --steps 4   # a quick check of the script on a CPU

Methods, each with the same 512x512 face region, views, seeds, steps and strength:
- seed's way: one pipeline call per view, attention slicing on, prompts encoded on every call;
- ours: StableDiffusionAugmentor, all views in ONE batched call (cached prompt embeddings, the
  region encoded once, fp16 + SDPA + channels_last on CUDA), VAE decode all at once or sized
  (the default: as few calls as fit under ``sd_memory_budget_gb`` or the denoising's peak,
  whichever is higher; and without the budget);
- on CUDA, what each tuning gives: the sized decode without cuDNN's autotuning, with the VAE's
  decoder in NCHW (its encoder channels_last: the UNet's input), and with a VAE that is not
  channels_last at all;
- ours compiled (``--compile``, default ``reduce-overhead`` on CUDA: CUDA graphs): the UNet and the
  VAE compiled, its compile + warm-up time on an empty cache and the first request after the
  warm-up against the steady state; then, each on its own empty cache, the UNet alone in
  ``default`` mode (no CUDA graphs) and the UNet alone in the chosen mode.

Every method is first warmed with its exact call (same views, steps, shapes), then timed
``--repeats`` times: the median and every run are reported, with per-stage times (CUDA events) and
per-stage peak memory from the augmentor. ``--startup`` also starts a fresh process on the inductor
cache the first compiled row left (what a restarted replica finds under its data dir) and reports
its start-up (load + compile + warm-up) and first-request times. A method that fails is reported
as failed and the others still run; the JSON is rewritten after each row.
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
from typing import Any, get_args

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


def failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def timed(name: str, call: Any, repeats: int, **info: Any) -> dict[str, Any]:
    """Warm with the exact call, then ``repeats`` timed runs; the median run's stages."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # so that what is reserved after the runs is this method's
    call()
    runs = [call() for _ in range(repeats)]
    # what the caching allocator holds, CUDA graph pools included: max_memory_allocated (the
    # peaks) does not see the memory a CUDA graph keeps for itself
    reserved = int(torch.cuda.memory_reserved()) if torch.cuda.is_available() else None
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
        "reserved_gb": round(reserved / 1e9, 2) if reserved else None,
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


def startup_run(args: argparse.Namespace, cache: str, label: str) -> dict[str, Any]:
    """A fresh process's start-up (load + compile + warm-up) on the inductor cache in ``cache``."""
    argv = [sys.executable, "-m", "bench.generation", "--startup-child", "--cache", cache]
    argv += ["--size", args.size, "--steps", str(args.steps), "--strength", str(args.strength)]
    argv += ["--views", args.views, "--compile", args.compile] + (["--model", args.model] if args.model else [])
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    row = {"start": label, **json.loads(out)}
    row["first_over_steady"] = row["first_s"] / row["steady_s"]
    log.info("%s", row)
    return row


def uncompile(pipe: Any) -> None:
    """Put back the eager modules an earlier compiled row wrapped, and forget dynamo's caches."""
    import torch

    for owner, name in ((pipe, "unet"), (pipe.vae, "encoder"), (pipe.vae, "decoder")):
        module = getattr(owner, name)
        setattr(owner, name, getattr(module, "_orig_mod", module))
    torch._dynamo.reset()


class Report:
    """The rows so far, written to ``path`` after each one: a run cut short keeps what it measured."""

    def __init__(self, path: Path, head: dict[str, Any]) -> None:
        self.path, self.data = path, {**head, "rows": [], "speedup_vs_seed": {}, "compiled": [], "startup": []}
        path.parent.mkdir(parents=True, exist_ok=True)

    def row(self, name: str, call: Any, repeats: int, views: int) -> dict[str, Any] | None:
        try:
            row = timed(name, call, repeats, views=views)
        except Exception as exc:  # one failing method must not cost the others' figures
            log.exception("%s failed", name)
            row = {"method": name, "views": views, "error": failure(exc)}
        self.data["rows"].append(row)
        seed = self.data["rows"][0]
        if "median_s" in seed and "median_s" in row and row["views"] == seed["views"]:
            self.data["speedup_vs_seed"][name] = round(seed["median_s"] / row["median_s"], 2)
        self.save()
        return row if "error" not in row else None

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="local SD 1.5 folder (default: random weights)")
    parser.add_argument("--size", choices=["full", "tiny"], default="full", help="random-weight architecture")
    parser.add_argument("--steps", type=int, default=None, help="default 20 on CUDA, 4 on a CPU (1 denoising step)")
    parser.add_argument("--strength", type=float, default=0.45)
    parser.add_argument("--views", default=",".join(DEFAULT_VIEWS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", choices=list(get_args(CompileMode)), default=None)
    parser.add_argument("--ten", action="store_true", help="also 10 views (default on CUDA)")
    parser.add_argument("--startup", action="store_true", help="also the start-up of a fresh process")
    parser.add_argument("--startup-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("out/bench_generation.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    from core.augment.stable_diffusion import StableDiffusionAugmentor

    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.steps = args.steps or (20 if device == "cuda" else 4)
    args.compile = args.compile or ("reduce-overhead" if device == "cuda" else "none")
    if args.startup_child:
        return startup_child(args)
    views = args.views.split(",")
    region = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    pipe = build_pipe(args.model, args.size, device, fp16=True)
    steps, strength, repeats = args.steps, args.strength, args.repeats
    report = Report(
        args.out,
        {
            "machine": describe_machine() + (f", {torch.cuda.get_device_name()}" if device == "cuda" else ""),
            "device": device,
            "dtype": str(pipe.unet.dtype).replace("torch.", ""),
            "weights": args.model or f"random ({args.size} SD 1.5 architecture)",
            "steps": steps,
            "strength": strength,
        },
    )

    def ours(decode_views: int = 0, compile_mode: CompileMode = "none", **kwargs: Any) -> Any:
        return StableDiffusionAugmentor(
            pipeline=pipe,
            num_inference_steps=steps,
            strength=strength,
            decode_views=decode_views,
            compile_mode=compile_mode,
            **kwargs,
        )

    def run(augmentor: Any, count: int = len(views)) -> Any:
        chosen = (views * 2)[:count]
        return lambda: our_call(augmentor, region, chosen, steps, strength)

    pipe.enable_attention_slicing()
    report.row(
        "seed: 1 call per view + attention slicing",
        lambda: seed_call(pipe, region, views, steps, strength),
        repeats,
        len(views),
    )
    pipe.disable_attention_slicing()
    eager_all, eager = ours(decode_views=len(views)), ours()
    report.row("ours: 1 batched call, decode all at once", run(eager_all), repeats, len(views))
    report.row("ours: 1 batched call, sized decode", run(eager), repeats, len(views))
    report.row("ours, sized under the denoising peak (no budget)", run(ours(memory_budget_gb=0)), repeats, len(views))
    if device == "cuda":  # what each CUDA tuning gives, the others kept
        torch.backends.cudnn.benchmark = False
        report.row("ours, sized decode, without cuDNN autotuning", run(eager), repeats, len(views))
        torch.backends.cudnn.benchmark = True
        # the VAE's encoder channels_last (the UNet's input), its decoder NCHW
        nchw_all, nchw = ours(decode_views=len(views), decoder_channels_last=False), ours(decoder_channels_last=False)
        report.row("ours, decoder NCHW, decode all at once", run(nchw_all), repeats, len(views))
        report.row("ours, decoder NCHW, sized decode", run(nchw), repeats, len(views))
        pipe.vae.to(memory_format=torch.contiguous_format)  # encoder too: NCHW latents into the UNet
        report.row("ours, sized decode, VAE not channels_last", run(nchw), repeats, len(views))
        pipe.vae.to(memory_format=torch.channels_last)
    if args.ten or device == "cuda":
        report.row("ours: 10 views, decode all at once", run(ours(decode_views=10), 10), repeats, 10)
        report.row("ours: 10 views, sized decode", run(eager, 10), repeats, 10)
        if device == "cuda":  # the ceiling for 10 views, then the decoder NCHW
            report.row("ours: 10 views, sized decode, budget 3.6 GB", run(ours(memory_budget_gb=3.6), 10), repeats, 10)
            nchw = ours(decoder_channels_last=False)  # sets the decoder NCHW again
            report.row("ours: 10 views, decoder NCHW, sized decode", run(nchw, 10), repeats, 10)
            pipe.vae.to(memory_format=torch.channels_last)
    if args.compile == "none":
        report.save()
        sys.stdout.write(markdown(report.data) + "\n")
        return
    # the shipped compiled configuration first (its cache then starts a fresh process), then the
    # issue's earlier one (UNet only, default mode) and CUDA graphs without the VAE, each cold
    compiled_rows: list[tuple[CompileMode, bool]] = [(args.compile, True)]
    if device == "cuda":
        compiled_rows += [("default", False), (args.compile, False)]
    with tempfile.TemporaryDirectory(prefix="inductor-") as caches:
        for index, (mode, with_vae) in enumerate(compiled_rows):
            name = f"ours + torch.compile ({mode}, UNet{' + VAE' if with_vae and device == 'cuda' else ''})"
            cache = Path(caches) / str(index)
            try:
                uncompile(pipe)
                compiled = ours(compile_mode=mode, compile_cache_dir=cache, compile_vae=with_vae)
                compiled.default_views = tuple(views)
                started = time.perf_counter()
                compiled.warm_up()
                warm_up = time.perf_counter() - started
                first = run(compiled)()["seconds"]
            except Exception as exc:
                log.exception("%s failed", name)
                report.data["compiled"].append({"method": name, "error": failure(exc)})
                report.save()
                continue
            row = report.row(name, run(compiled), repeats, len(views))
            info = {"method": name, "compile_and_warm_up_s": round(warm_up, 1), "first_request_s": round(first, 3)}
            if row:
                info["first_over_steady"] = round(first / row["median_s"], 2)
            report.data["compiled"].append(info)
            report.save()
            if index == 0 and args.startup and row:
                try:
                    report.data["startup"].append(startup_run(args, str(cache), "warm compile cache"))
                except (subprocess.CalledProcessError, ValueError, IndexError) as exc:
                    log.error("the start-up run failed: %s", getattr(exc, "stderr", "") or exc)
                report.save()
    sys.stdout.write(markdown(report.data) + "\n")


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"machine: {report['machine']}; {report['device']} {report['dtype']}; weights: {report['weights']}",
        f"512x512, {report['steps']} steps, strength {report['strength']}; median of the runs after a warm-up call",
        "",
        "| method | views | median s | runs s | peak GB | reserved GB | prompt / encode / denoise / decode / to-uint8 s "
        "| stage peaks GB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['views']} | failed: {r['error']} | | | | | |")
            continue
        stages = " / ".join(f"{s['seconds']:.3f}" for s in r["stages"]) or "-"
        peaks = " / ".join(f"{s['peak_mem_bytes'] / 1e9:.2f}" for s in r["stages"] if s["peak_mem_bytes"]) or "-"
        runs = ", ".join(str(s) for s in r["runs_s"])
        lines.append(
            f"| {r['method']} | {r['views']} | {r['median_s']} | {runs} | {r['peak_gb']} | {r.get('reserved_gb')} "
            f"| {stages} | {peaks} |"
        )
    lines += [
        "",
        "speed-up over the seed's way: " + ", ".join(f"{k}: {v}x" for k, v in report["speedup_vs_seed"].items()),
    ]
    for info in report["compiled"]:
        lines.append(f"compiled: {info}")
    for row in report["startup"]:
        lines.append(
            f"start-up with {row['start']}: {row['startup_s']:.1f} s, first request {row['first_s']:.3f} s, "
            f"steady {row['steady_s']:.3f} s ({row['first_over_steady']:.2f}x)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
