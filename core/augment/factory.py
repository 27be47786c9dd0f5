"""Builds the configured augmentor: Stable Diffusion when weights are configured, else classic."""

from __future__ import annotations

from core.augment.base import Augmentor
from core.faces.types import FaceDetector
from core.settings import Settings


def load_augmentor(settings: Settings, detector: FaceDetector | None = None) -> Augmentor:
    if settings.sd_model:
        from core.augment.stable_diffusion import StableDiffusionAugmentor

        augmentor = StableDiffusionAugmentor(
            model_id=settings.sd_model,
            device=settings.sd_device,
            use_fp16=settings.sd_fp16,
            strength=settings.sd_strength,
            num_inference_steps=settings.sd_steps,
            guidance_scale=settings.sd_guidance,
            max_batch=settings.sd_max_batch or None,
            decode_views=settings.sd_decode_views,
            memory_budget_gb=settings.sd_memory_budget_gb,
            compile_mode=settings.sd_compile,
            compile_cache_dir=settings.data_dir / "cache" / "inductor",
            detector=detector,
        )
        augmentor.load_model()  # fail fast with a clear message when the weights are absent
        return augmentor
    from core.augment.classic import ClassicAugmentor

    return ClassicAugmentor()
