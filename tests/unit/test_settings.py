"""The one settings model: defaults < YAML < MANYANGLES_* environment < CLI flags, every field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.cli.flags import settings_from_args
from core.cli.main import build_parser
from core.errors import InvalidSetting
from core.settings import Settings

from conftest import cli

# field -> (a non-default value as YAML, env and a flag give it, the value Settings holds)
TABLE: dict[str, tuple[str, object]] = {
    "data_dir": ("/srv/gallery", Path("/srv/gallery")),
    "store_url": ("postgresql://manyangles@db:5432/gallery", "postgresql://manyangles@db:5432/gallery"),
    "detector": ("insightface", "insightface"),
    "embedder": ("insightface", "insightface"),
    "insightface_root": ("/opt/insightface", Path("/opt/insightface")),
    "insightface_pack": ("antelopev2", "antelopev2"),
    "onnx_providers": ("CPUExecutionProvider", "CPUExecutionProvider"),
    "embed_workers": ("3", 3),
    "max_upload_bytes": ("4096", 4096),
    "max_image_pixels": ("123456", 123456),
    "queue_budget_s": ("2.5", 2.5),
    "access_log_days": ("30", 30.0),
    "dlib_upsample_below": ("640", 640),
    "det_size": ("480", 480),
    "min_face_px": ("12", 12),
    "sd_model": ("/models/sd15", "/models/sd15"),
    "sd_device": ("cuda:1", "cuda:1"),
    "sd_fp16": ("false", False),
    "sd_strength": ("0.3", 0.3),
    "sd_steps": ("12", 12),
    "sd_guidance": ("5.5", 5.5),
    "sd_max_batch": ("2", 2),
    "sd_decode_views": ("1", 1),
    "sd_memory_budget_gb": ("3.6", 3.6),
    "sd_compile": ("max-autotune", "max-autotune"),
    "gate_threshold": ("0.9", 0.9),
    "gate_fmr": ("0.01", 0.01),
    "verify_fmr": ("0.0001", 0.0001),
    "match_mode": ("mean", "mean"),
    "target_fpir": ("0.001", 0.001),
    "views_offset": ("0.004", 0.004),
    "top_k": ("9", 9),
    "search_exact_max": ("200000", 200000),
    "reembed_workers": ("3", 3),
    "reembed_batch": ("64", 64),
    "reembed_address": ("127.0.0.1:6379", "127.0.0.1:6379"),
    "api_key": ("s3cret-key", "s3cret-key"),
    "log_level": ("debug", "DEBUG"),
}


def test_the_table_covers_every_field():
    assert set(TABLE) == set(Settings.model_fields)
    defaults = Settings()
    for name, (_, expected) in TABLE.items():
        assert getattr(defaults, name) != expected, f"{name}: pick a non-default value"


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_field_from_yaml_env_and_flag(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    text, expected = TABLE[name]
    flat = tmp_path / "flat.yaml"
    flat.write_text(f"{name}: {text!r}\n" if name == "api_key" else f"{name}: {text}\n")
    assert getattr(Settings.load(flat), name) == expected

    served = tmp_path / "serve.yaml"  # the args block of a Serve config is the same layer
    served.write_text(yaml.safe_dump({"applications": [{"name": "x", "args": yaml.safe_load(flat.read_text())}]}))
    assert getattr(Settings.load(served), name) == expected

    monkeypatch.setenv(f"MANYANGLES_{name.upper()}", text)
    assert getattr(Settings.load(), name) == expected
    monkeypatch.delenv(f"MANYANGLES_{name.upper()}")

    args = build_parser().parse_args(["--" + name.replace("_", "-"), text, "persons"])
    assert getattr(settings_from_args(args), name) == expected


def test_layer_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "s.yaml"
    config.write_text("top_k: 3\ntarget_fpir: 0.001\nmatch_mode: mean\n")
    monkeypatch.setenv("MANYANGLES_CONFIG", str(config))
    monkeypatch.setenv("MANYANGLES_TOP_K", "7")
    settings = Settings.load()
    assert (settings.top_k, settings.target_fpir, settings.match_mode) == (7, 0.001, "mean")  # env > YAML
    assert Settings.load(top_k=2, data_dir=None).top_k == 2  # flag > env; None means "not given"
    # Serve validates the config's args with the model itself: they are the YAML layer
    assert Settings.model_validate({"top_k": 4, "match_mode": "mean"}).top_k == 7
    assert Settings.model_validate({"top_k": 4, "match_mode": "mean"}).match_mode == "mean"


def test_unknown_keys_and_bad_values_name_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "s.yaml"
    config.write_text("detectr: dlib\n")
    with pytest.raises(InvalidSetting, match="unknown setting 'detectr'"):
        Settings.load(config)
    config.write_text("detector: dlb\n")
    with pytest.raises(InvalidSetting, match=r"detector='dlb'.*'dlib' or 'insightface'"):
        Settings.load(config)
    with pytest.raises(InvalidSetting, match="top_k=0.*greater than or equal to 1"):
        Settings.from_mapping({"top_k": 0})
    with pytest.raises(InvalidSetting, match="sd_device"):
        Settings.from_mapping({"sd_device": "gpu"})
    # replace() validates too
    with pytest.raises(InvalidSetting, match="target_fpir"):
        Settings().replace(target_fpir=2.0)
    assert Settings().replace(top_k=3).top_k == 3
    # a check across fields names them, and only them (not every value: the API key is one)
    with pytest.raises(InvalidSetting, match=r"sd_steps=2 at sd_strength=0.45 makes no denoising step") as bad:
        Settings.from_mapping({"sd_steps": 2, "api_key": "secret-value"})
    assert "secret-value" not in str(bad.value) and "use sd_steps >= 3" in str(bad.value)
    monkeypatch.setenv("MANYANGLES_MATCH_MODE", "median")
    with pytest.raises(InvalidSetting, match=r"match_mode='median'.*'blend' or 'top2'"):
        Settings.load()


def test_the_cli_refuses_a_bad_setting_at_start(tmp_path: Path):
    done = cli(tmp_path, "persons", env={"MANYANGLES_EMBEDDER": "arcfce"})
    assert done.returncode == 2
    assert "embedder='arcfce'" in done.stderr and "'arcface', 'dlib' or 'insightface'" in done.stderr
    assert not (tmp_path / "gallery.db").exists()


def test_the_serve_builder_takes_the_settings_model():
    import inspect

    from serve.app import build_app

    assert inspect.signature(build_app).parameters["args"].annotation is Settings
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="nope"):
        Settings.model_validate({"nope": 1})  # what `serve run` does with a bad args block
