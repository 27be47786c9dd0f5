"""The application builder: ``serve run serve_config.yaml`` imports ``serve.app:build_app``."""

# No `from __future__ import annotations`: Serve reads the builder's annotation to validate the
# config's args with the Settings model (a string annotation would hand it a plain dict).

from typing import Any

from ray.serve import Application

from core.settings import Settings
from serve.api import API
from serve.embedder import Embedder
from serve.generator import Generator


def build_app(args: Settings) -> Application:
    """Serve validates the config's ``args`` with the Settings model itself (an unknown key or a
    bad value fails at deploy, naming the field); MANYANGLES_* variables override them."""
    return compose(args)


def compose(settings: Settings, deployment_options: dict[str, dict[str, Any]] | None = None) -> Application:
    """Generator and Embedder handles composed into the API ingress with ``.bind()``.

    ``deployment_options`` (by deployment name; see serve/config.py) carry the resources and
    batching of serve_config.yaml into applications built in Python.
    """
    # Replicas may run in another working directory: pin the data dir.
    settings = settings.replace(data_dir=settings.data_dir.resolve())
    options = deployment_options or {}
    # @serve.deployment turns the classes into Deployments (mypy sees the classes)
    embedder = Embedder.options(**options.get("Embedder", {})).bind(settings)  # type: ignore[attr-defined]
    generator = Generator.options(**options.get("Generator", {})).bind(settings)  # type: ignore[attr-defined]
    return API.options(**options.get("API", {})).bind(embedder, generator, settings)  # type: ignore[attr-defined]
