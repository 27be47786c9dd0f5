"""Stable Diffusion 1.5 img2img views of the face region (diffusers).

Weights come from a local folder or the local Hugging Face cache only: nothing is downloaded.
On CUDA the pipeline runs in fp16 with PyTorch SDPA attention and a channels_last UNet, and all
requested views go through ONE batched pipeline call (split into chunks only when memory
requires). Attention slicing and VAE tiling are memory fallbacks, never the default. The text
embeddings of the fixed view prompts are computed once per load and reused.

The seed document's call shape keeps working::

    aug = StableDiffusionAugmentor(model_id="/models/sd15", device="cuda", use_fp16=True)
    aug.load_model()
    views = aug.generate_face_angles(reference_image=bgr, num_variations=5,
                                     num_inference_steps=20, guidance_scale=7.5)
    aug.unload_model()
"""

from __future__ import annotations

import gc
import logging
import math
import resource
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.augment.base import (
    GeneratedView,
    GenerationResult,
    GenerationStats,
    Stage,
    crop_square,
    face_region_box,
    merge_stages,
)
from core.augment.sd_load import compile_pipeline, load_pretrained
from core.augment.sd_prompts import PromptCache
from core.augment.sd_stages import DecodeOptions, StageClock, run_img2img
from core.augment.views import NEGATIVE_PROMPT, VIEW_PROMPTS, ViewRequest, plan_views, prompt_for
from core.errors import GenerationFailed, InvalidInput, NoFaceFound
from core.faces.types import Face, FaceDetector
from core.settings import CompileMode, Settings

log = logging.getLogger(__name__)

# One source of defaults: the settings model (strength 0.45: low enough that the photo, not the
# prompt, decides who it is).
DEFAULT_STRENGTH: float = Settings.model_fields["sd_strength"].default
DEFAULT_STEPS: int = Settings.model_fields["sd_steps"].default
DEFAULT_GUIDANCE: float = Settings.model_fields["sd_guidance"].default
DEFAULT_MEMORY_BUDGET_GB: float = Settings.model_fields["sd_memory_budget_gb"].default


class StableDiffusionAugmentor:
    name = "sd15-img2img"
    supported_views: tuple[str, ...] | None = None  # any name: custom views become prompts
    default_views: tuple[str, ...] = ("left", "right", "up", "down", "smiling", "serious", "frontal")
    repeats_differ = True  # each repeat of a view is sampled with its own seed

    def __init__(
        self,
        model_id: str = "runwayml/stable-diffusion-v1-5",
        device: str = "auto",
        use_fp16: bool = True,
        *,
        strength: float = DEFAULT_STRENGTH,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        resolution: int = 512,
        max_batch: int | None = None,
        decode_views: int = 0,
        memory_budget_gb: float = DEFAULT_MEMORY_BUDGET_GB,
        decoder_channels_last: bool = True,
        compile_mode: CompileMode = "none",
        compile_cache_dir: Path | None = None,
        compile_vae: bool = True,
        expand: float = 1.8,
        detector: FaceDetector | None = None,
        pipeline: Any | None = None,
    ) -> None:
        self.model_id = str(model_id)
        self.requested_device = device
        self.use_fp16 = use_fp16
        self.strength = strength
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.resolution = resolution
        self.max_batch = max_batch
        self.decode = DecodeOptions(decode_views, int(memory_budget_gb * 1e9), decoder_channels_last)
        self.compile_mode = compile_mode
        self.compile_cache_dir = compile_cache_dir
        self.compile_vae = compile_vae
        self.compiled = False
        self.warm_up_s: float | None = None  # None: no warm-up ran
        # compiled: the views per call the warm-up compiled for; every later call runs at it
        self.warmed_batch: int | None = None
        self.expand = expand
        self.detector = detector
        self.healthy = True
        self.last_stats: GenerationStats | None = None
        self._pipe: Any = pipeline
        self._prompts: PromptCache | None = None
        # One call at a time: a diffusers scheduler keeps its step index in itself, so two threads
        # in one pipeline (a replica with max_ongoing_requests > 1) corrupt each other's denoising.
        self._lock = threading.RLock()
        self._memory_fallbacks = False
        self.device = "cpu"
        self.dtype_name = "float32"
        if pipeline is not None:
            self._prepare(pipeline)

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    def load_model(self) -> None:
        if self._pipe is not None:
            return
        started = time.perf_counter()
        self._prepare(load_pretrained(self.model_id, self.requested_device, self.use_fp16))
        log.info(
            "Stable Diffusion loaded from %s on %s (%s) in %.1f s",
            self.model_id,
            self.device,
            self.dtype_name,
            time.perf_counter() - started,
        )

    def _prepare(self, pipe: Any) -> None:
        import torch

        self.device = str(pipe.device.type)
        self.dtype_name = str(pipe.unet.dtype).replace("torch.", "")
        pipe.set_progress_bar_config(disable=True)
        if self.device == "cuda":
            # SDPA is diffusers' default attention processor on torch 2; make sure of it.
            from diffusers.models.attention_processor import AttnProcessor2_0

            pipe.unet.set_attn_processor(AttnProcessor2_0())
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)  # the encoded latent, hence the UNet's input
            if not self.decode.channels_last:
                for part in (pipe.vae.post_quant_conv, pipe.vae.decoder):  # post_quant_conv: None in some VAEs
                    if part is not None:
                        part.to(memory_format=torch.contiguous_format)
            # fixed shapes (the warm-up runs the enrollment's): let cuDNN time its conv algorithms once
            torch.backends.cudnn.benchmark = True
        if self.compile_mode != "none" and not self.compiled:
            self._compile(pipe)
        self._pipe = pipe
        # the fixed prompts never change between enrollments: encoded once; then the text
        # encoder leaves the GPU (core/augment/sd_prompts.py)
        self._prompts = PromptCache(pipe, (*(prompt_for(v) for v in VIEW_PROMPTS), NEGATIVE_PROMPT))
        if self.device == "cuda":
            self._prompts.offload()

    def _compile(self, pipe: Any) -> None:
        """``torch.compile`` (core/augment/sd_load.py); a compiled VAE decodes one view per call:
        one shape, never compiled again whatever the view count (a sized decode's chunks vary),
        the least memory; on an H100 five such compiled decodes took 0.041 s against 0.091 s for
        one eager decode of five."""
        vae = compile_pipeline(
            pipe, self.compile_mode, self.compile_cache_dir, self.compile_vae and self.device == "cuda"
        )
        if vae and not self.decode.views:
            self.decode = replace(self.decode, views=1)
        self.compiled = True

    def warm_up(self, num_views: int | None = None) -> None:
        """Load the weights and, on a GPU or with a compiled UNet, run the exact call an enrollment
        makes (the default views, the configured steps and chunking) so that the first enrollment
        pays for neither kernel selection nor compilation. On a plain CPU there is nothing to pay
        for: a restarted replica is ready sooner without it."""
        image = np.full((self.resolution, self.resolution, 3), 128, np.uint8)
        count = len(self.default_views) if num_views is None else num_views
        requests = plan_views(None, count, 0, default_order=self.default_views)
        with self._lock:
            self.load_model()
            if self.device == "cuda" or self.compiled:
                started = time.perf_counter()
                self._run_batches(image, requests, self.num_inference_steps, self.strength)
                self.warm_up_s = time.perf_counter() - started
                if self.compiled and count:
                    self.warmed_batch = min(self.max_batch or count, count)
                log.info(
                    "generator warmed up (%d views, %d steps) in %.1f s",
                    count,
                    self.num_inference_steps,
                    self.warm_up_s,
                )

    def state(self) -> dict[str, object]:
        """What /v1/health shows of the generator."""
        return {
            "compile": self.compile_mode,
            "compiled": self.compiled,
            "compile_cache_dir": str(self.compile_cache_dir) if self.compile_cache_dir else None,
            "warmed_up": self.warm_up_s is not None,
            "warm_up_s": None if self.warm_up_s is None else round(self.warm_up_s, 3),
            "warmed_batch": self.warmed_batch,
            "decode_views": self.decode.views or "auto",
            "memory_budget_gb": round(self.decode.budget_bytes / 1e9, 3),
            "memory_fallbacks": self._memory_fallbacks,
            "text_encoder": self._prompts.encoder_device if self._prompts is not None else None,
        }

    def unload_model(self) -> None:
        with self._lock:
            self._pipe = None
            self._prompts = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is a requirement
            pass

    # --- prompts -----------------------------------------------------------------------------
    def _prompt_embeds(self, prompt: str) -> Any:
        if self._prompts is None:
            raise GenerationFailed("the Stable Diffusion weights are not loaded")
        return self._prompts.get(prompt)

    def _negative_embeds(self) -> Any:
        return self._prompt_embeds(NEGATIVE_PROMPT)

    @property
    def cached_prompts(self) -> int:
        return len(self._prompts) if self._prompts is not None else 0

    # --- generation --------------------------------------------------------------------------
    def face_region(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        x, y, side = face_region_box(face, self.expand, rgb.shape)
        crop = crop_square(rgb, x, y, side)
        interpolation = cv2.INTER_AREA if side > self.resolution else cv2.INTER_CUBIC
        return cv2.resize(crop, (self.resolution, self.resolution), interpolation=interpolation)

    def generate(self, rgb: np.ndarray, face: Face, requests: list[ViewRequest]) -> GenerationResult:
        region = self.face_region(rgb, face)
        with self._lock:
            self.load_model()
            return self._run_batches(region, requests, self.num_inference_steps, self.strength)

    def _run_batches(
        self, region: np.ndarray, requests: list[ViewRequest], steps: int, strength: float
    ) -> GenerationResult:
        if int(steps * strength) < 1:  # diffusers would fail deep inside the UNet with an empty batch
            raise InvalidInput(
                f"{steps} steps at strength {strength:g} make no denoising step (img2img runs "
                f"int(steps x strength)); use at least {math.ceil(1 / strength)} steps"
            )
        import torch

        if not requests:
            return GenerationResult([], GenerationStats(self.name, self.device, self.dtype_name, 0.0, steps, strength))
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        chunk = min(self.max_batch or len(requests), len(requests))
        # compiled and warmed: every call at the warmed batch (fewer views padded, more split), as
        # any other batch would compile again, for tens of seconds, inside an enrollment
        pad = self.warmed_batch is not None
        chunk = self.warmed_batch or chunk
        while True:
            try:
                views, batches, stages = self._generate_chunks(region, requests, steps, strength, chunk, pad)
                break
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                chunk = self._after_out_of_memory(chunk)
            except RuntimeError as exc:
                if "CUDA" in str(exc):
                    self.healthy = False  # an unrecoverable device error: fail health checks
                raise
        total = time.perf_counter() - started
        peak = self._peak_memory(stages)
        stats = GenerationStats(
            generator=self.name,
            device=self.device,
            dtype=self.dtype_name,
            total_s=total,
            steps=steps,
            strength=strength,
            guidance_scale=self.guidance_scale,
            peak_mem_bytes=peak,
            batches=batches,
            stages=stages,
        )
        self.last_stats = stats
        return GenerationResult(views, stats)

    def _after_out_of_memory(self, chunk: int) -> int:
        """The views per call of the next try after CUDA ran out of memory: half as many; at one,
        attention slicing and VAE tiling (once); after that, GenerationFailed."""
        if chunk > 1:
            chunk = max(1, chunk // 2)
            log.warning("CUDA out of memory: retrying with %d views per call", chunk)
        elif not self._memory_fallbacks:
            log.warning("CUDA out of memory at 1 view per call: enabling attention slicing and VAE tiling")
            self._pipe.enable_attention_slicing()
            self._pipe.vae.enable_tiling()
            self._memory_fallbacks = True
        else:
            raise GenerationFailed(
                "CUDA out of memory even for one view with attention slicing and VAE tiling"
            ) from None
        return chunk

    def _peak_memory(self, stages: list[Stage]) -> int:
        """The call's peak memory: on CUDA the highest of its stages' (each stage reset the
        counter) and the counter's; on the CPU the process's peak resident size."""
        if self.device == "cuda":
            import torch

            return max([s.peak_mem_bytes or 0 for s in stages] + [int(torch.cuda.max_memory_allocated())])
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

    def _generate_chunks(
        self, region: np.ndarray, requests: list[ViewRequest], steps: int, strength: float, chunk: int, pad: bool
    ) -> tuple[list[GeneratedView], list[int], list[Stage]]:
        """The views in calls of ``chunk``; with ``pad`` a shorter last call is filled up with
        copies of its last request, which are never decoded."""
        negative = self._negative_embeds()
        views: list[GeneratedView] = []
        batches, parts = [], []
        for start in range(0, len(requests), chunk):
            part = requests[start : start + chunk]
            batch = part + [part[-1]] * (chunk - len(part)) if pad else part
            clock = StageClock(self.device)
            call_started = time.perf_counter()
            images = run_img2img(
                self._pipe,
                region,
                [self._prompt_embeds(r.prompt) for r in batch],
                negative,
                [r.seed for r in batch],
                steps=steps,
                strength=strength,
                guidance=self.guidance_scale,
                decode=self.decode,
                clock=clock,
                keep=len(part),
            )
            parts.append(clock.stages())  # (synchronises the device)
            share = (time.perf_counter() - call_started) / len(part)
            batches.append(len(part))
            for request, rgb in zip(part, images):
                views.append(GeneratedView(request, rgb, share, self.name, self.device, request.prompt))
        return views, batches, merge_stages(parts)

    # --- the seed document's API -------------------------------------------------------------
    def generate_face_angles(
        self,
        reference_image: np.ndarray,
        num_variations: int = 5,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        seed: int = 0,
    ) -> list[np.ndarray]:
        """BGR photo in, ``num_variations`` BGR views of its largest face out."""
        if self.detector is None:
            from core.faces.dlib_detector import DlibHogDetector

            self.detector = DlibHogDetector()
        rgb = cv2.cvtColor(np.ascontiguousarray(reference_image), cv2.COLOR_BGR2RGB)
        faces = self.detector.detect(rgb)
        if not faces:
            raise NoFaceFound("no face was found in the reference image")
        self.load_model()
        previous = self.guidance_scale
        self.guidance_scale = guidance_scale
        try:
            requests = plan_views(None, num_variations, seed, default_order=self.default_views)
            result = self._run_batches(self.face_region(rgb, faces[0]), requests, num_inference_steps, self.strength)
        finally:
            self.guidance_scale = previous
        return [cv2.cvtColor(v.rgb, cv2.COLOR_RGB2BGR) for v in result.views]
