"""Stable Diffusion on CUDA with the tiny pipeline: fp16, seeds, the out-of-memory path, the compiled
UNet and the sized VAE decode. Skipped (with the reason) where there is no CUDA device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

from core.augment.sd_build import random_img2img_pipeline  # noqa: E402
from core.augment.stable_diffusion import StableDiffusionAugmentor  # noqa: E402
from core.augment.views import plan_views  # noqa: E402

STEPS, STRENGTH = 4, 0.5


def cuda_augmentor(**kwargs) -> StableDiffusionAugmentor:
    pipe = random_img2img_pipeline("tiny", seed=0).to("cuda", torch.float16)
    return StableDiffusionAugmentor(pipeline=pipe, num_inference_steps=STEPS, strength=STRENGTH, **kwargs)


@pytest.fixture(scope="module")
def region() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)


def run(augmentor: StableDiffusionAugmentor, region: np.ndarray, count: int, seed: int = 1):
    return augmentor._run_batches(region, plan_views(None, count, seed), STEPS, STRENGTH)


def test_fp16_on_cuda_with_stage_peaks(region):
    augmentor = cuda_augmentor()
    result = run(augmentor, region, 3)
    assert augmentor.device == "cuda" and result.stats.dtype == "float16"
    assert [v.rgb.shape for v in result.views] == [(512, 512, 3)] * 3
    assert all(v.rgb.dtype == np.uint8 for v in result.views)
    assert all(s.peak_mem_bytes and s.peak_mem_bytes > 0 for s in result.stats.stages)
    assert result.stats.peak_mem_bytes > 0
    # the CUDA tunings: cuDNN times its conv algorithms, both the UNet and the VAE are channels_last
    assert torch.backends.cudnn.benchmark
    pipe = augmentor._pipe
    for module in (pipe.unet, pipe.vae):
        conv = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_same_seed_same_views_on_cuda(region):
    augmentor = cuda_augmentor()
    first, again, other = run(augmentor, region, 2, 1), run(augmentor, region, 2, 1), run(augmentor, region, 2, 2)
    for a, b in zip(first.views, again.views):
        assert np.array_equal(a.rgb, b.rgb)
    assert not np.array_equal(first.views[0].rgb, other.views[0].rgb)


def decode_peaks(region: np.ndarray, **kwargs) -> tuple[dict[str, int], int]:
    """Each stage's peak for 6 views, and how many VAE decode calls made them."""
    augmentor = cuda_augmentor(**kwargs)
    vae, calls = augmentor._pipe.vae, []
    decode = vae.decode

    def counted(*args, **kw):
        calls.append(args[0].shape[0])
        return decode(*args, **kw)

    vae.decode = counted
    run(augmentor, region, 6)  # kernel selection (cuDNN's workspace) out of the way
    calls.clear()
    stats = run(augmentor, region, 6).stats
    return {s.name: s.peak_mem_bytes for s in stats.stages}, len(calls)


def test_sized_decode_stays_under_the_denoising_peak(region):
    (together, _), (one_by_one, _) = decode_peaks(region, decode_views=6), decode_peaks(region, decode_views=1)
    sized, _ = decode_peaks(region, memory_budget_gb=0)
    assert sized["vae_decode"] <= together["vae_decode"]
    # never above what the denoising needed, except that one view at a time is the least there is
    assert sized["vae_decode"] <= max(sized["denoise"], one_by_one["vae_decode"]) * 1.05


def test_sized_decode_fills_the_memory_budget_and_no_more(region):
    """A budget with room for about five views' decode above one view's (a one-view probe may cost
    more than a view in a batch): fewer calls than one view at a time, a peak above it, and not
    above the budget."""
    (together, _), (one_by_one, six_calls) = decode_peaks(region, decode_views=6), decode_peaks(region, decode_views=1)
    per_view = (together["vae_decode"] - one_by_one["vae_decode"]) / 5
    assert per_view > 0 and six_calls == 6
    budget = one_by_one["vae_decode"] + 4.5 * per_view
    sized, calls = decode_peaks(region, memory_budget_gb=budget / 1e9)
    assert 1 < calls < 6
    assert one_by_one["vae_decode"] < sized["vae_decode"] <= budget * 1.05


def test_a_decoder_in_nchw_decodes_the_same_views(region):
    """The VAE's encoder channels_last (the UNet's input), its decoder NCHW: same views."""
    nchw = cuda_augmentor(decoder_channels_last=False)
    vae = nchw._pipe.vae

    def first_conv(module):
        return next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))

    assert first_conv(vae.encoder).weight.is_contiguous(memory_format=torch.channels_last)
    assert first_conv(vae.decoder).weight.is_contiguous()
    for a, b in zip(run(cuda_augmentor(), region, 2).views, run(nchw, region, 2).views):
        assert np.abs(a.rgb.astype(np.int16) - b.rgb.astype(np.int16)).mean() < 2.0


def test_out_of_memory_falls_back_to_smaller_calls(region):
    """Cap the process between what one view and eight views at once need: the batched call runs
    out of memory and the augmentor retries with fewer views per call, all eight still made."""
    augmentor = cuda_augmentor(decode_views=8)
    torch.cuda.empty_cache()
    one = run(augmentor, region, 1).stats.peak_mem_bytes
    eight = run(augmentor, region, 8).stats.peak_mem_bytes
    assert eight > one
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction((one + eight) / 2 / total)
    try:
        result = run(augmentor, region, 8)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert len(result.views) == 8 and max(result.stats.batches) < 8 and sum(result.stats.batches) == 8


@pytest.mark.parametrize("mode", ["reduce-overhead", "default"])
def test_compiled_unet_and_vae_on_cuda(region, tmp_path: Path, monkeypatch, mode):
    """reduce-overhead (CUDA graphs for the UNet) and default: the UNet and the VAE compiled, the
    warm-up compiles into the given cache, and the views match the eager ones."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "elsewhere"))
    torch._dynamo.reset()
    eager = run(cuda_augmentor(), region, 2)
    augmentor = cuda_augmentor(compile_mode=mode, compile_cache_dir=tmp_path / "inductor")
    pipe = augmentor._pipe
    assert all(hasattr(m, "_orig_mod") for m in (pipe.unet, pipe.vae.encoder, pipe.vae.decoder))
    augmentor.warm_up(num_views=2)
    assert augmentor.state()["warmed_up"] and augmentor.state()["compiled"]
    assert any(p.is_file() for p in (tmp_path / "inductor").rglob("*"))
    compiled, again = run(augmentor, region, 2), run(augmentor, region, 2)  # graphs replayed
    for a, b, c in zip(eager.views, compiled.views, again.views):
        assert np.abs(a.rgb.astype(np.int16) - b.rgb.astype(np.int16)).mean() < 2.0
        assert np.array_equal(b.rgb, c.rgb)
    # other view counts run at the warmed batch, the decode one view a call: nothing compiles again
    from torch._dynamo.utils import counters

    assert augmentor.state()["warmed_batch"] == 2 and augmentor.state()["decode_views"] == 1
    graphs = counters["stats"]["unique_graphs"]
    one, three = run(augmentor, region, 1), run(augmentor, region, 3)
    assert counters["stats"]["unique_graphs"] == graphs, "a view count other than the warmed one compiled again"
    assert len(one.views) == 1 and len(three.views) == 3 and three.stats.batches == [2, 1]


def test_the_text_encoder_leaves_the_gpu_once_the_prompts_are_cached(region):
    pipe = random_img2img_pipeline("tiny", seed=0).to("cuda", torch.float16)
    with torch.inference_mode():
        on_gpu, _ = pipe.encode_prompt("portrait photo, wearing a hat", "cuda", 1, False)
    augmentor = StableDiffusionAugmentor(pipeline=pipe, num_inference_steps=STEPS, strength=STRENGTH)
    assert augmentor.state()["text_encoder"] == "cpu" and pipe.text_encoder.dtype == torch.float32
    custom = augmentor._prompt_embeds("portrait photo, wearing a hat")  # encoded on the CPU, then moved
    assert custom.device.type == "cuda" and custom.dtype == torch.float16
    torch.testing.assert_close(custom, on_gpu, atol=2e-2, rtol=2e-2)
    result = augmentor._run_batches(region, plan_views(["wearing a hat", "left"], None, 1), STEPS, STRENGTH)
    assert len(result.views) == 2
