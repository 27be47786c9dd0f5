"""StableDiffusionAugmentor on a tiny random-weight SD img2img pipeline built from configs.

The pipeline is real diffusers code with toy widths (see core/augment/sd_build.py); it makes no
faces, which is exactly what the identity gate must reject.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.augment.sd_build import random_img2img_pipeline
from core.augment.stable_diffusion import StableDiffusionAugmentor
from core.augment.viewmaker import LocalViews
from core.augment.views import NEGATIVE_PROMPT, VIEW_PROMPTS, plan_views, prompt_for
from core.errors import ModelUnavailable
from core.faces.decode import decode_image
from core.service import ManyAnglesService

from conftest import photo_bytes

STEPS, STRENGTH = 4, 0.5


@pytest.fixture(scope="module")
def tiny_pipe():
    return random_img2img_pipeline("tiny", seed=0)


@pytest.fixture()
def augmentor(tiny_pipe):
    return StableDiffusionAugmentor(pipeline=tiny_pipe, num_inference_steps=STEPS, strength=STRENGTH)


@pytest.fixture(scope="module")
def obama(default_models):
    rgb = decode_image(photo_bytes("Barack_Obama"), max_bytes=1 << 25, max_pixels=1 << 26).rgb
    return rgb, default_models.detector.detect(rgb)[0]


def count_calls(monkeypatch: pytest.MonkeyPatch, pipe) -> list[int]:
    calls: list[int] = []
    original = type(pipe).__call__

    def counting(self, *args, **kwargs):
        calls.append(len(kwargs["image"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", counting)
    return calls


def test_all_views_in_one_batched_call(augmentor, obama, monkeypatch):
    calls = count_calls(monkeypatch, augmentor._pipe)
    requests = plan_views(["left", "right", "up", "down", "smiling"], None, seed=7)
    result = augmentor.generate(*obama, requests)
    assert calls == [5], "one pipeline call for all five views"
    assert [v.request.name for v in result.views] == ["left", "right", "up", "down", "smiling"]
    for view in result.views:
        assert view.rgb.shape == (512, 512, 3) and view.rgb.dtype == np.uint8
        assert view.generator == "sd15-img2img" and view.device == "cpu"
        assert view.prompt == prompt_for(view.request.name) and view.latency_s > 0
    stats = result.stats
    assert stats.batches == [5] and stats.steps == STEPS and stats.strength == STRENGTH
    assert stats.dtype == "float32" and stats.device == "cpu" and stats.peak_mem_bytes > 0
    assert stats.guidance_scale == 7.5 and stats.total_s >= sum(v.latency_s for v in result.views) * 0.99


def test_max_batch_splits_into_chunks(tiny_pipe, obama, monkeypatch):
    augmentor = StableDiffusionAugmentor(pipeline=tiny_pipe, num_inference_steps=STEPS, strength=STRENGTH, max_batch=2)
    calls = count_calls(monkeypatch, tiny_pipe)
    result = augmentor.generate(*obama, plan_views(None, 5, seed=0))
    assert calls == [2, 2, 1] and result.stats.batches == [2, 2, 1]


def test_same_seed_same_views_other_seed_other_views(augmentor, obama):
    first = augmentor.generate(*obama, plan_views(["left", "smiling"], None, seed=3))
    again = augmentor.generate(*obama, plan_views(["left", "smiling"], None, seed=3))
    other = augmentor.generate(*obama, plan_views(["left", "smiling"], None, seed=4))
    for a, b in zip(first.views, again.views):
        np.testing.assert_array_equal(a.rgb, b.rgb)
    assert not np.array_equal(first.views[0].rgb, other.views[0].rgb)
    # a view's seed, hence its image, does not depend on what else was requested with it
    alone = augmentor.generate(*obama, plan_views(["smiling"], None, seed=3))
    np.testing.assert_allclose(alone.views[0].rgb, first.views[1].rgb, atol=2)


def test_concurrent_calls_on_one_augmentor_give_what_serial_calls_give(augmentor, obama):
    """A replica runs up to max_ongoing_requests calls on threads; the scheduler's state is the
    pipeline's, so they must not interleave (they did: IndexError in the DPM solver step)."""
    from concurrent.futures import ThreadPoolExecutor

    seeds = [11, 12, 13]
    serial = [augmentor.generate(*obama, plan_views(["left", "up"], None, seed=s)) for s in seeds]
    with ThreadPoolExecutor(max_workers=3) as pool:
        parallel = list(pool.map(lambda s: augmentor.generate(*obama, plan_views(["left", "up"], None, seed=s)), seeds))
    for a, b in zip(serial, parallel):
        for x, y in zip(a.views, b.views):
            np.testing.assert_allclose(x.rgb, y.rgb, atol=2)


def test_prompt_embeddings_are_cached_and_custom_views_use_the_template(augmentor, obama):
    fixed = len(VIEW_PROMPTS) + 1  # every fixed view prompt plus the negative prompt
    assert augmentor.cached_prompts == fixed
    assert NEGATIVE_PROMPT in augmentor._prompts
    result = augmentor.generate(*obama, plan_views(["wearing glasses", "left"], None, seed=0))
    assert result.views[0].request.source == "augmented_wearing_glasses"
    assert "wearing glasses" in result.views[0].prompt and "portrait photo" in result.views[0].prompt
    assert augmentor.cached_prompts == fixed + 1
    augmentor.generate(*obama, plan_views(["wearing glasses"], None, seed=1))
    assert augmentor.cached_prompts == fixed + 1


def test_face_region_is_the_expanded_box_at_512(augmentor, obama):
    rgb, face = obama
    region = augmentor.face_region(rgb, face)
    assert region.shape == (512, 512, 3)
    # the face stays in the middle of the region: dlib finds it there again
    from core.faces.dlib_detector import DlibHogDetector

    found = DlibHogDetector().detect(region)
    assert len(found) == 1
    cx, cy = found[0].center
    assert abs(cx - 256) < 60 and abs(cy - 256) < 80


def test_save_and_load_from_a_local_folder(tiny_pipe, obama, tmp_path: Path):
    tiny_pipe.save_pretrained(tmp_path / "sd")
    loaded = StableDiffusionAugmentor(
        model_id=str(tmp_path / "sd"), device="cpu", num_inference_steps=STEPS, strength=STRENGTH
    )
    assert not loaded.loaded
    loaded.load_model()
    assert loaded.loaded and loaded.dtype_name == "float32"
    in_memory = StableDiffusionAugmentor(pipeline=tiny_pipe, num_inference_steps=STEPS, strength=STRENGTH)
    requests = plan_views(["up"], None, seed=11)
    a = loaded.generate(*obama, requests).views[0].rgb
    b = in_memory.generate(*obama, requests).views[0].rgb
    np.testing.assert_allclose(a, b, atol=2)
    loaded.unload_model()
    assert not loaded.loaded and loaded.cached_prompts == 0


def test_absent_weights_fail_fast_and_say_where_they_looked(tmp_path: Path):
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable) as folder_err:
        StableDiffusionAugmentor(model_id=str(tmp_path / "missing-sd")).load_model()
    assert str(tmp_path / "missing-sd") in folder_err.value.message
    assert "MANYANGLES_SD_MODEL" in folder_err.value.message
    with pytest.raises(ModelUnavailable) as hub_err:
        StableDiffusionAugmentor(model_id="runwayml/stable-diffusion-v1-5").load_model()
    assert "Hugging Face cache" in hub_err.value.message
    assert time.perf_counter() - started < 30, "no download attempt, no hang"


def test_seed_document_call_shape(tiny_pipe, obama):
    rgb, _ = obama
    augmentor = StableDiffusionAugmentor(model_id="unused", device="cpu", use_fp16=True, pipeline=tiny_pipe)
    augmentor.load_model()  # already loaded: a no-op
    views = augmentor.generate_face_angles(
        reference_image=cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
        num_variations=3,
        num_inference_steps=STEPS,
        guidance_scale=5.0,
    )
    assert len(views) == 3 and all(v.shape == (512, 512, 3) and v.dtype == np.uint8 for v in views)
    assert augmentor.guidance_scale == 7.5 and augmentor.last_stats.guidance_scale == 5.0
    assert augmentor.last_stats.steps == STEPS
    augmentor.unload_model()


def test_gate_rejects_what_random_weights_make(service, augmentor):
    service = ManyAnglesService(
        service.settings, service.faces, service.store, LocalViews(service.settings, service.faces, augmentor)
    )
    events = []
    result = service.enroll(
        "Barack Obama", photo_bytes("Barack_Obama"), augment=True, num_variations=3, progress=events.append
    )
    assert result.sources == ["original"] and result.num_images == 1
    assert len(result.views) == 3 and not any(v["accepted"] for v in result.views)
    assert all(v["reason"] in ("no face",) or v["reason"].startswith("similarity") for v in result.views)
    assert [e.stage for e in events].count("rejected") == 3
    runs = service.store.generation_runs()
    assert len(runs) == 1 and runs[0]["generator"] == "sd15-img2img"
    assert runs[0]["num_views"] == 3 and runs[0]["num_accepted"] == 0 and runs[0]["steps"] == STEPS
    stages = runs[0]["stages"]  # stored with the run, for the latency charts
    assert [s["name"] for s in stages] == ["prompt", "vae_encode", "denoise", "vae_decode", "to_uint8"]
    assert all(s["seconds"] >= 0 and s["peak_mem_bytes"] is None for s in stages)  # no per-stage peak on a CPU
    assert sum(s["seconds"] for s in stages) <= runs[0]["total_s"]
    assert service.store.load_gallery(result.model).size == 1


def test_custom_prompts_are_kept_in_a_bounded_lru_and_fixed_ones_stay():
    from core.augment.sd_prompts import PromptCache

    pipe = random_img2img_pipeline("tiny", seed=0)
    cache = PromptCache(pipe, ("fixed a", "fixed b"), custom_kept=2)
    first = cache.get("fixed a")
    assert len(cache) == 2 and first.shape == (1, 77, pipe.text_encoder.config.hidden_size)
    for name in ("c1", "c2", "c3"):  # one more custom prompt than kept: the oldest goes
        cache.get(name)
    assert len(cache) == 4 and "c1" not in cache and {"c2", "c3", "fixed a", "fixed b"} <= set(cache._cache)
    cache.get("c2")  # a hit makes c2 the most recent: the next eviction takes c3
    cache.get("c4")
    assert "c3" not in cache and "c2" in cache and "c4" in cache
    assert cache.get("fixed a") is first  # fixed prompts are encoded once and never evicted
    assert cache.offload() is False and cache.encoder_device == "cpu"  # already on the CPU: nothing to move


def test_steps_that_make_no_denoising_step_are_refused_clearly(augmentor, obama):
    from core.errors import InvalidInput

    region = augmentor.face_region(*obama)
    with pytest.raises(InvalidInput, match=r"2 steps at strength 0.45 make no denoising step.*at least 3"):
        augmentor._run_batches(region, plan_views(["left"], None, 0), 2, 0.45)
