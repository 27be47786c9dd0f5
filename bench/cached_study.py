"""What the studies over ``manyangles eval DIR --cache CACHE`` share: their command line and
the cached embeddings of the labelled folder (one original with its classic views per identity,
and the probes)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from core.evaluation.dataset import load_labelled_folder
from core.evaluation.eval_data import EvalData
from core.evaluation.evaluate import embed_folder
from core.service import ManyAnglesService
from core.settings import Settings


def study_parser(doc: str | None) -> argparse.ArgumentParser:
    """``DIR``, ``--cache`` (required) and ``--workers``; a study adds its own options."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--cache", type=Path, required=True, help="the embedding cache of `manyangles eval`")
    parser.add_argument("--workers", type=int, default=2)
    return parser


def start(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Settings, ManyAnglesService]:
    """Parse the command line, log plain lines, and open the service on the default settings."""
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings()
    return args, settings, ManyAnglesService.from_settings(settings)


def cached_eval_data(args: argparse.Namespace, settings: Settings, service: ManyAnglesService) -> EvalData:
    """The folder's vectors (embedded only where the cache misses)."""
    folder = load_labelled_folder(args.dir)
    embedded = embed_folder(settings, folder, args.workers, ("classic",), service.gate_threshold(), args.cache)
    return embedded.eval_data()
