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

import logging

from bench.cached_study import cached_eval_data, start, study_parser
from bench.machine import describe_machine
from core.evaluation.crossval import cross_validate, format_crossval

log = logging.getLogger("bench.crossval_noise")


def main() -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    args, settings, service = start(parser)
    conditions: dict[str, tuple[str, ...] | None] = {"original": None, "placebo: +mirror": ("classic:mirror",)}
    report = cross_validate(cached_eval_data(args, settings, service), conditions, rules=("mean",), seeds=args.seeds)
    log.info("%s", describe_machine())
    log.info("%s", format_crossval(report))


if __name__ == "__main__":
    main()
