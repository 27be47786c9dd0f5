"""``manyangles`` (also ``python -m core``): enroll, add-photo, identify, verify, persons, images,
remove-image, delete, eval, calibrate, and the gallery's upkeep (check, backup, export, import,
duplicates, keys, models, ...).

Results go to standard output (``--json``: the same shapes as the HTTP API, core/schemas/results.py);
diagnostics, progress and errors go to standard error. Exit codes: 0 ok, 2 usage or bad
setting, 3 bad input, 4 not found, 5 already exists, 6 refused in the gallery's state (not
calibrated, a person's last photo, a photo identified as someone else), 7 model unavailable,
1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from core.cli import access, evaluation, gallery, model_versions, persons
from core.cli.flags import add_settings_arguments, settings_from_args
from core.cli.registry import Command, dispatch
from core.errors import ManyAnglesError

log = logging.getLogger("core.cli")  # the name its stderr lines have always carried

# Every subcommand, in the order ``manyangles --help`` lists them (and a mistyped one's error names them).
COMMANDS: tuple[Command, ...] = (
    persons.enroll,
    persons.add_photo,
    persons.identify,
    persons.verify,
    persons.list_persons,
    gallery.check,
    access.keys,
    persons.delete,
    persons.rename,
    persons.merge,
    persons.images,
    persons.remove_image,
    model_versions.show_models,
    model_versions.reembed_gallery,
    model_versions.switch_model,
    model_versions.prune_vectors,
    gallery.backup,
    gallery.restore,
    gallery.export,
    gallery.import_gallery,
    gallery.duplicates,
    access.access_log,
    evaluation.eval_command,
    evaluation.calibrate_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manyangles", description="ManyAngles face enrollment")
    parser.add_argument("--json", action="store_true", help="print JSON (the HTTP API's shapes)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_settings_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_to(sub)
    return parser


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    for name in settings.unknown_environment():
        log.warning("environment variable %s names no setting; ignored", name)
    return dispatch(COMMANDS, args.command, settings, args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = "DEBUG" if args.verbose else (args.log_level or "WARNING")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("core.progress").setLevel(logging.INFO)  # long work says how far it got
    try:
        return run(args)
    except ManyAnglesError as exc:
        log.error("%s: %s", exc.code, exc.message)
        return exc.exit_code
