"""Generation in stages: decode chunking, stage records, the compiled UNet (tiny pipeline, CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.augment.base import Stage, merge_stages
from core.augment.sd_build import random_img2img_pipeline
from core.augment.sd_stages import STAGES, DecodeOptions, plan_chunks
from core.augment.stable_diffusion import StableDiffusionAugmentor
from core.augment.views import plan_views

STEPS, STRENGTH = 4, 0.5
MB = 2**20


def test_plan_chunks_makes_as_few_calls_as_fit_under_the_ceiling():
    # 1200 MB of room at 500 MB a view: 2 views a call; 9 views in 5 calls, dealt evenly
    assert plan_chunks(9, 500 * MB, 2000 * MB, 3200 * MB) == [2, 2, 2, 2, 1]
    assert plan_chunks(9, 500 * MB, 2000 * MB, 6600 * MB) == [9]  # room for 9.2: all that remain
    assert plan_chunks(3, 500 * MB, 2000 * MB, 6600 * MB) == [3]
    assert plan_chunks(7, 500 * MB, 2000 * MB, 3600 * MB) == [3, 2, 2]  # room for 3: 3 calls, not 3+3+1
    assert plan_chunks(4, 500 * MB, 2000 * MB, 3600 * MB) == [2, 2]  # 3+1 would be as many calls
    assert plan_chunks(3, 500 * MB, 3000 * MB, 3200 * MB) == [1, 1, 1]  # no room for one: still one
    assert plan_chunks(2, 500 * MB, 3500 * MB, 3200 * MB) == [1, 1]  # above the ceiling already
    assert plan_chunks(0, 500 * MB, 2000 * MB, 3200 * MB) == []
    assert plan_chunks(4, 0, 2000 * MB, 3200 * MB) == [4]  # nothing measured


def test_decode_options_follow_the_settings():
    from core.settings import Settings

    augmentor = StableDiffusionAugmentor(pipeline=random_img2img_pipeline("tiny", seed=0), memory_budget_gb=3.6)
    assert augmentor.decode == DecodeOptions(views=0, budget_bytes=3_600_000_000, channels_last=True)
    assert StableDiffusionAugmentor(pipeline=random_img2img_pipeline("tiny", seed=0)).decode.budget_bytes == int(
        Settings.model_fields["sd_memory_budget_gb"].default * 1e9
    )


def test_merge_stages_sums_seconds_and_keeps_the_highest_peak():
    first = [Stage("denoise", 1.0, 300), Stage("vae_decode", 0.5, None)]
    second = [Stage("denoise", 0.25, 200), Stage("vae_decode", 0.5, 700), Stage("to_uint8", 0.1)]
    assert merge_stages([first, second]) == [
        Stage("denoise", 1.25, 300),
        Stage("vae_decode", 1.0, 700),
        Stage("to_uint8", 0.1, None),
    ]
    assert merge_stages([]) == []


@pytest.fixture(scope="module")
def region() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)


def views_of(augmentor: StableDiffusionAugmentor, region: np.ndarray, count: int = 3) -> list[np.ndarray]:
    result = augmentor._run_batches(region, plan_views(None, count, 5), STEPS, STRENGTH)
    return [v.rgb for v in result.views]


def test_stages_are_timed_in_order(region):
    augmentor = StableDiffusionAugmentor(pipeline=random_img2img_pipeline("tiny", seed=0), strength=STRENGTH)
    result = augmentor._run_batches(region, plan_views(None, 3, 5), STEPS, STRENGTH)
    stages = result.stats.stages
    assert tuple(s.name for s in stages) == STAGES
    assert all(s.seconds >= 0 for s in stages) and stages[2].seconds > 0  # the denoising did run
    assert sum(s.seconds for s in stages) <= result.stats.total_s
    assert [v.rgb.shape for v in result.views] == [(512, 512, 3)] * 3


def test_decoding_one_view_at_a_time_gives_the_same_views(region, monkeypatch):
    pipe = random_img2img_pipeline("tiny", seed=0)
    together = views_of(StableDiffusionAugmentor(pipeline=pipe, strength=STRENGTH), region, 4)
    sizes: list[int] = []
    decode = pipe.vae.decode

    def counting(latents, *args, **kwargs):
        sizes.append(int(latents.shape[0]))
        return decode(latents, *args, **kwargs)

    monkeypatch.setattr(pipe.vae, "decode", counting)
    apart = views_of(StableDiffusionAugmentor(pipeline=pipe, strength=STRENGTH, decode_views=1), region, 4)
    assert sizes == [1, 1, 1, 1]
    for a, b in zip(together, apart):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.max() <= 1 and diff.mean() < 0.01  # same views (rounding at most)
    sizes.clear()
    views_of(StableDiffusionAugmentor(pipeline=pipe, strength=STRENGTH, decode_views=3), region, 4)
    assert sizes == [3, 1]


def test_compiled_unet_warms_up_the_enrollment_shapes_and_caches_on_disk(region, tmp_path: Path, monkeypatch):
    """sd_compile=default with the tiny pipeline on the CPU: the warm-up compiles (inductor writes
    its cache under the given folder), and the compiled UNet makes the views the eager one makes."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "elsewhere"))  # restored after the test
    eager = views_of(StableDiffusionAugmentor(pipeline=random_img2img_pipeline("tiny", seed=0)), region, 2)
    cache = tmp_path / "cache" / "inductor"
    augmentor = StableDiffusionAugmentor(
        pipeline=random_img2img_pipeline("tiny", seed=0),
        num_inference_steps=STEPS,
        strength=STRENGTH,
        compile_mode="default",
        compile_cache_dir=cache,
    )
    state = augmentor.state()
    assert state["compiled"] and state["compile"] == "default" and not state["warmed_up"]
    augmentor.warm_up(num_views=2)
    state = augmentor.state()
    assert state["warmed_up"] and state["warm_up_s"] > 0 and state["compile_cache_dir"] == str(cache)
    assert any(p.is_file() for p in cache.rglob("*")), "inductor wrote its cache under the data dir"
    compiled = views_of(augmentor, region, 2)
    for a, b in zip(eager, compiled):
        assert np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() < 1.0
    # other view counts run at the warmed batch (padded, or split and padded): nothing compiles again
    from torch._dynamo.utils import counters

    assert state["warmed_batch"] == 2
    graphs = counters["stats"]["unique_graphs"]
    one, three = views_of(augmentor, region, 1), augmentor._run_batches(region, plan_views(None, 3, 5), STEPS, STRENGTH)
    assert counters["stats"]["unique_graphs"] == graphs, "a view count other than the warmed one compiled again"
    assert len(one) == 1  # the padding changes no view (a decode of one, not two: rounding at most)
    assert np.abs(one[0].astype(np.int16) - compiled[0].astype(np.int16)).max() <= 1
    assert len(three.views) == 3 and three.stats.batches == [2, 1]


def test_a_plain_cpu_augmentor_skips_the_warm_up():
    augmentor = StableDiffusionAugmentor(pipeline=random_img2img_pipeline("tiny", seed=0))
    augmentor.warm_up()
    state = augmentor.state()
    assert state == {
        "compile": "none",
        "compiled": False,
        "compile_cache_dir": None,
        "warmed_up": False,
        "warm_up_s": None,
        "warmed_batch": None,
        "decode_views": "auto",
        "memory_budget_gb": 3.0,
        "memory_fallbacks": False,
        "text_encoder": "cpu",
    }


def test_health_carries_the_generator_state():
    """What the Generator's health_info adds for Stable Diffusion survives /v1/health's schema."""
    from core.schemas.health import GeneratorHealth

    augmentor = StableDiffusionAugmentor(pipeline=random_img2img_pipeline("tiny", seed=0), decode_views=2)
    health = GeneratorHealth.model_validate({"status": "ok", "generator": augmentor.name, **augmentor.state()})
    assert health.compile == "none" and health.compiled is False and health.warmed_up is False
    assert health.decode_views == 2 and health.memory_fallbacks is False and health.text_encoder == "cpu"
    assert health.memory_budget_gb == 3.0


def test_a_text_encoder_offloaded_in_float32_does_not_change_the_calls_dtype(region):
    """On a GPU the text encoder is offloaded to the CPU in float32 once the prompts are cached;
    diffusers would then cast the given embeddings (and so the latents) to float32 beside an fp16
    UNet, and take the CPU as its device. The same dtype split on the CPU: fp16 UNet and VAE."""
    import torch

    from core.augment.sd_prompts import PromptCache
    from core.augment.sd_stages import StageClock, run_img2img, text_encoder_set_aside
    from core.augment.views import NEGATIVE_PROMPT

    pipe = random_img2img_pipeline("tiny", seed=0).to(dtype=torch.float16)
    prompts = PromptCache(pipe, ("portrait photo", NEGATIVE_PROMPT))
    pipe.text_encoder.to(torch.float32)  # what PromptCache.offload does (there: to the CPU)
    assert prompts.get("portrait photo").dtype == torch.float16
    views = run_img2img(
        pipe,
        region,
        [prompts.get("portrait photo")] * 2,
        prompts.get(NEGATIVE_PROMPT),
        [1, 2],
        steps=STEPS,
        strength=STRENGTH,
        guidance=7.5,
        decode=DecodeOptions(),
        clock=StageClock("cpu"),
    )
    assert [v.shape for v in views] == [region.shape] * 2 and views[0].dtype == np.uint8
    assert pipe.text_encoder is not None and pipe.text_encoder.dtype == torch.float32  # put back
    with text_encoder_set_aside(pipe):  # what /v1/health reads meanwhile, from another thread
        assert pipe.text_encoder is None and prompts.encoder_device == "cpu"
