"""The application builder: ``serve run serve_config.yaml`` imports ``serve.app:build_app``."""

# No `from __future__ import annotations`: Serve reads the builder's annotation to parse the args
# into AppArgs (a string annotation would hand it a plain dict).

from typing import Any

from ray.serve import Application

from serve.api import API
from serve.args import AppArgs
from serve.embedder import Embedder
from serve.generator import Generator


def build_app(args: AppArgs) -> Application:
    """The builder Serve calls with the config's ``args`` (exactly one parameter)."""
    return compose(args)


def compose(args: AppArgs, deployment_options: dict[str, dict[str, Any]] | None = None) -> Application:
    """Generator and Embedder handles composed into the API ingress with ``.bind()``.

    ``deployment_options`` (by deployment name) override the decorators in Python-built
    applications (tests, benchmarks); serve_config.yaml overrides them for ``serve run``.
    """
    settings = args.to_settings()
    options = deployment_options or {}
    embedder = Embedder.options(**options.get("Embedder", {})).bind(settings)
    generator = Generator.options(**options.get("Generator", {})).bind(settings)
    return API.options(**options.get("API", {})).bind(embedder, generator, settings)
