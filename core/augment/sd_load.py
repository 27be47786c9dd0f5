"""Stable Diffusion 1.5 weights in, a pipeline out: from a local folder or the local Hugging Face
cache only (nothing is downloaded; absent weights fail fast, saying where they were looked for),
on the device asked for; and ``torch.compile`` of its UNet and VAE (core/augment/stable_diffusion.py
prepares and runs it)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from core.errors import ModelUnavailable
from core.settings import CompileMode

log = logging.getLogger(__name__)


def where_it_looked(model_id: str) -> str:
    from huggingface_hub import constants

    path = Path(model_id).expanduser()
    if path.exists() or path.is_absolute() or model_id.startswith((".", "~")):
        return f"the folder {path}"
    return f"the Hugging Face cache {constants.HF_HUB_CACHE} (offline: nothing is downloaded)"


def resolve_device(requested: str) -> str:
    """``auto``: CUDA when there is one; a CUDA device asked for and absent is refused."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable(f"device {requested!r} requested but CUDA is not available")
    return requested


def load_pretrained(model_id: str, requested_device: str, use_fp16: bool) -> Any:
    """The img2img pipeline from local weights (fp16 on CUDA when ``use_fp16``), without the
    safety checker, with the DPM-Solver scheduler, on its device."""
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    from core.augment.sd_build import dpm_solver

    device = resolve_device(requested_device)
    dtype = torch.float16 if (use_fp16 and device == "cuda") else torch.float32
    try:
        pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
            model_id,
            dtype=dtype,
            local_files_only=True,
            safety_checker=None,
            requires_safety_checker=False,
        )
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"Stable Diffusion 1.5 weights not found for {model_id!r}: looked in "
            f"{where_it_looked(model_id)}. Supply them as a local diffusers folder "
            "(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) and set "
            f"MANYANGLES_SD_MODEL to its path. ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None
    pipe.scheduler = dpm_solver()
    return pipe.to(device)


def compile_pipeline(pipe: Any, mode: CompileMode, cache_dir: Path | None, vae: bool) -> bool:
    """``torch.compile`` the UNet in ``mode`` and, with ``vae``, the VAE's encoder and decoder
    (default mode, as measured); compiled lazily, on the first call (the warm-up's). Inductor's
    cache goes to ``cache_dir`` (under the data dir), so a restarted replica reuses it. Returns
    whether the VAE was compiled."""
    import torch

    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # read by inductor whenever it compiles; this process is the generator's own replica
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)
    pipe.unet = torch.compile(pipe.unet, mode=None if mode == "default" else mode)
    parts = ["UNet"]
    if vae:
        pipe.vae.encoder = torch.compile(pipe.vae.encoder)
        pipe.vae.decoder = torch.compile(pipe.vae.decoder)
        parts.append("VAE")
    log.info("%s compiled with torch.compile (mode %s, cache %s)", " and ".join(parts), mode, cache_dir)
    return vae
