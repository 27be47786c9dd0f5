"""One batched img2img call of Stable Diffusion, in timed stages with the memory each one peaks at.

Stages: ``prompt`` (the cached text embeddings of the views, concatenated), ``vae_encode`` (the face
region, encoded ONCE: every view starts from the same latent, where diffusers would encode it once
per view), ``denoise`` (the diffusers pipeline up to the latents: noise, scheduler, UNet), ``vae_decode``
(in chunks, see ``plan_chunks``) and ``to_uint8`` (on the device, then one copy to the host).

On CUDA the stages are timed with CUDA events (one synchronisation at the end) and each stage's peak
is ``torch.cuda.max_memory_allocated`` since the stage began; on a CPU they are wall-clock times and
peaks are not measured per stage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.augment.base import Stage

STAGES = ("prompt", "vae_encode", "denoise", "vae_decode", "to_uint8")


class StageClock:
    """Times named stages; ``stages()`` reads them (synchronising the device once)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._open: list[tuple[str, Any, Any, int | None]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        import torch

        if self.device != "cuda":
            started = time.perf_counter()
            yield
            self._open.append((name, started, time.perf_counter(), None))
            return
        torch.cuda.reset_peak_memory_stats()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        yield
        end.record()
        self._open.append((name, start, end, int(torch.cuda.max_memory_allocated())))

    def last_peak(self) -> int | None:
        """The memory peak of the stage that ended last (None on a CPU)."""
        return self._open[-1][3] if self._open else None

    def stages(self) -> list[Stage]:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            return [Stage(name, start.elapsed_time(end) / 1e3, peak) for name, start, end, peak in self._open]
        return [Stage(name, end - start, peak) for name, start, end, peak in self._open]


@dataclass(frozen=True)
class DecodeOptions:
    """How the VAE decode is split and laid out.

    ``views``: views per decode call (0: sized to memory on a GPU, all at once on a CPU).
    ``budget_bytes``: what a sized decode may fill the GPU up to, weights included, when that is
    above the denoising's own peak (0: the denoising's peak is the ceiling).
    ``channels_last``: decode in channels_last (the VAE's layout on CUDA); False decodes contiguous
    NCHW latents with the decoder's weights in NCHW (``StableDiffusionAugmentor`` sets them so)."""

    views: int = 0
    budget_bytes: int = 0
    channels_last: bool = True


def plan_chunks(remaining: int, per_view_bytes: int, allocated_bytes: int, ceiling_bytes: int) -> list[int]:
    """Views per decode call for ``remaining`` views: as few calls as fit between what is allocated
    now and the ceiling, each at least one view, the views dealt as evenly as the calls allow
    (7 views with room for 3 a call: 3, 2, 2)."""
    if remaining <= 0:
        return []
    room = ceiling_bytes - allocated_bytes
    fits = math.floor(room / per_view_bytes) if per_view_bytes > 0 else remaining
    calls = math.ceil(remaining / max(1, min(remaining, fits)))
    base, extra = divmod(remaining, calls)
    return [base + 1] * extra + [base] * (calls - extra)


def to_uint8(images: Any) -> Any:
    """VAE output in [-1, 1], NCHW, to uint8 NHWC on the same device."""
    import torch

    return ((images / 2 + 0.5).clamp(0, 1) * 255).round().to(dtype=torch.uint8).permute(0, 2, 3, 1)


def encode_region(pipe: Any, region: np.ndarray) -> Any:
    """The face region's latent (1, 4, h/8, w/8), scaled: the mean of the VAE posterior."""
    import torch

    image = torch.from_numpy(np.ascontiguousarray(region)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    image = image.to(device=pipe.device, dtype=pipe.vae.dtype)
    return pipe.vae.encode(image).latent_dist.mean * pipe.vae.config.scaling_factor


def decode_in_chunks(
    pipe: Any, latents: Any, options: DecodeOptions, device: str, denoise_peak: int | None
) -> list[Any]:
    """uint8 views (on the device), decoded in chunks: ``options.views`` per call when set; else
    sized so that decoding needs no more memory than the ceiling: the denoising's peak or the
    budget, whichever is higher, and never more than is free. The first chunk of a sized decode is
    one view: it measures a view's cost; the others are planned from it (``plan_chunks``)."""
    import torch

    latents = latents / pipe.vae.config.scaling_factor
    if device == "cuda":  # a conv with either operand channels_last runs channels_last
        layout = torch.channels_last if options.channels_last else torch.contiguous_format
        latents = latents.contiguous(memory_format=layout)
    n = latents.shape[0]

    def decode(part: Any) -> Any:
        return to_uint8(pipe.vae.decode(part, return_dict=False)[0])

    if options.views or device != "cuda" or denoise_peak is None:
        step = options.views or n
        return [decode(latents[start : start + step]) for start in range(0, n, step)]
    free, _ = torch.cuda.mem_get_info()
    ceiling = min(max(denoise_peak, options.budget_bytes), int(torch.cuda.memory_allocated()) + int(0.9 * free))
    # the clock reset the peak counter when this stage began: after the first chunk (one view)
    # it holds that view's decode cost; not reset again, so the stage's peak is the whole decode's
    before = int(torch.cuda.memory_allocated())
    out = [decode(latents[:1])]
    per_view = max(int(torch.cuda.max_memory_allocated()) - before, 1)
    start = 1
    for chunk in plan_chunks(n - 1, per_view, int(torch.cuda.memory_allocated()), ceiling):
        out.append(decode(latents[start : start + chunk]))
        start += chunk
    return out


@contextmanager
def text_encoder_set_aside(pipe: Any) -> Iterator[None]:
    """The pipeline without its text encoder for one call that is given the prompt embeddings.

    diffusers casts given embeddings to the text encoder's dtype and device, and takes its execution
    device from its first module, the text encoder: once the encoder is offloaded to the CPU in
    float32 (``PromptCache.offload``) a call would move the embeddings, hence the latents, to the
    CPU or to float32 beside an fp16 UNet on the GPU. Without a text encoder it uses the UNet's."""
    encoder = pipe.text_encoder
    if encoder is None or (encoder.device == pipe.vae.device and encoder.dtype == pipe.vae.dtype):
        yield
        return
    pipe.text_encoder = None
    try:
        yield
    finally:
        pipe.text_encoder = encoder


def run_img2img(
    pipe: Any,
    region: np.ndarray,
    prompt_embeds: list[Any],
    negative: Any,
    seeds: list[int],
    *,
    steps: int,
    strength: float,
    guidance: float,
    decode: DecodeOptions,
    clock: StageClock,
    keep: int | None = None,
) -> list[np.ndarray]:
    """RGB uint8 views of ``region``, one per prompt embedding and seed, in one denoising call;
    only the first ``keep`` are decoded (the others pad the call to a compiled batch)."""
    import torch

    n = len(seeds)
    with torch.inference_mode():
        with clock.stage("prompt"):
            embeds = torch.cat(prompt_embeds)
            negatives = negative.expand(n, -1, -1)
        with clock.stage("vae_encode"):
            latent = encode_region(pipe, region)
        with clock.stage("denoise"):
            generators = [torch.Generator(device=clock.device).manual_seed(seed) for seed in seeds]
            with text_encoder_set_aside(pipe):
                latents = pipe(
                    image=latent.expand(n, -1, -1, -1),
                    prompt_embeds=embeds,
                    negative_prompt_embeds=negatives,
                    strength=strength,
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    generator=generators,
                    output_type="latent",
                ).images
            del latent
        denoise_peak = clock.last_peak()
        with clock.stage("vae_decode"):
            decoded = decode_in_chunks(pipe, latents[:keep], decode, clock.device, denoise_peak)
            del latents
        with clock.stage("to_uint8"):
            views = torch.cat(decoded).cpu().numpy()
    return list(views)
