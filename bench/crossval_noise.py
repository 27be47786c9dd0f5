"""How noisy is a fold? A placebo for the cross-validated study of core/evaluation/crossval.py.

The placebo adds to every enrolled person one "view" that is the original photo mirrored: for
a model whose embedding already averages the face and its mirror image (dlib-resnet-v1-flip),
that view sits at cosine ~0.999 to the original, and under the ``mean`` rule it moves each
person's template by well under 0.001. Any fold it makes "worse than original-only" is noise;
their count is the floor under which no real change can be told apart.

Reads the embeddings of ``manyangles eval DIR --cache CACHE`` (run that first; nothing is
embedded here unless the cache misses), then prints the placebo's row beside original-only.

    python -m bench.crossval_noise ../shared/faces --cache out/eval_cache
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.machine import describe_machine
from core.evaluation.crossval import cross_validate, format_crossval
from core.evaluation.dataset import load_labelled_folder
from core.evaluation.evaluate import embed_folder
from core.service import ManyAnglesService
from core.settings import Settings

log = logging.getLogger("bench.crossval_noise")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--cache", type=Path, required=True, help="the embedding cache of `manyangles eval`")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings()
    service = ManyAnglesService.from_settings(settings)
    folder = load_labelled_folder(args.dir)
    embedded = embed_folder(settings, folder, args.workers, ("classic",), service.gate_threshold(), args.cache)
    conditions: dict[str, tuple[str, ...] | None] = {"original": None, "placebo: +mirror": ("classic:mirror",)}
    report = cross_validate(embedded.eval_data(), conditions, rules=("mean",), seeds=args.seeds)
    log.info("%s", describe_machine())
    log.info("%s", format_crossval(report))


if __name__ == "__main__":
    main()
