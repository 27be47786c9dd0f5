"""The one settings object: defaults < YAML file < environment < explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings


def test_layers(tmp_path: Path):
    config = tmp_path / "serve.yaml"
    config.write_text(
        "applications:\n  - name: manyangles\n    args:\n      data_dir: /srv/gallery\n"
        "      target_fpir: 0.001\n      top_k: 3\n"
    )
    env = {"MANYANGLES_CONFIG": str(config), "MANYANGLES_TOP_K": "7", "MANYANGLES_EMBEDDER": "insightface"}
    settings = Settings.load(env=env)
    assert settings.data_dir == Path("/srv/gallery")
    assert settings.target_fpir == 0.001
    assert settings.top_k == 7 and settings.embedder == "insightface"
    assert Settings.load(env=env, top_k=2, data_dir=None).top_k == 2


def test_flat_yaml_and_unknown_keys(tmp_path: Path):
    config = tmp_path / "s.yaml"
    config.write_text("max_upload_bytes: 1000\n")
    assert Settings.load(config_file=config, env={}).max_upload_bytes == 1000
    config.write_text("no_such_setting: 1\n")
    with pytest.raises(ValueError, match="no_such_setting"):
        Settings.load(config_file=config, env={})
