"""``python -m core``: enroll, identify, verify, persons, delete, eval, calibrate.

Results go to standard output (``--json`` for machine-readable output); diagnostics and errors go
to standard error through logging. Exit codes: 0 ok, 2 usage, 3 bad input, 4 not found,
5 already exists, 6 not calibrated, 7 model unavailable, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from core.errors import InvalidInput, ManyAnglesError, NotCalibrated
from core.settings import Settings

log = logging.getLogger("core.cli")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _read(path: str) -> bytes:
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"{path}: no such file")
    return file.read_bytes()


def _face_policy(args: argparse.Namespace) -> str | int:
    if args.face is not None:
        return args.face
    return "largest" if args.largest else "single"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="ManyAngles face enrollment")
    parser.add_argument("--data-dir", type=Path, help="gallery folder (env MANYANGLES_DATA_DIR)")
    parser.add_argument("--config", type=Path, help="YAML settings file (env MANYANGLES_CONFIG)")
    parser.add_argument("--detector", choices=["dlib", "insightface"])
    parser.add_argument("--embedder", choices=["dlib", "insightface"])
    parser.add_argument("--insightface-root", type=Path, help="holds models/<pack>/*.onnx")
    parser.add_argument("--insightface-pack", help="pack name, default buffalo_l")
    parser.add_argument("--match-mode", choices=["max", "mean"])
    parser.add_argument("--sd-model", help="Stable Diffusion 1.5 folder (env MANYANGLES_SD_MODEL)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    enroll = sub.add_parser("enroll", help="enroll a person from one photo")
    enroll.add_argument("name")
    enroll.add_argument("photo")
    enroll.add_argument("--largest", action="store_true", help="use the largest face if several")
    enroll.add_argument("--face", type=int, help="use face N (0 = largest) if several")
    enroll.add_argument("--augment", action="store_true", help="add generated views (identity-gated)")
    enroll.add_argument("--views", help="comma-separated views, e.g. left,right,smiling")
    enroll.add_argument("--num-variations", type=int, help="how many default views (default 5)")
    enroll.add_argument("--seed", type=int, default=0)

    identify = sub.add_parser("identify", help="identify every face in a photo")
    identify.add_argument("photo")
    identify.add_argument("--top-k", type=int, default=None)

    verify = sub.add_parser("verify", help="are two photos the same person?")
    verify.add_argument("photo_a")
    verify.add_argument("photo_b")

    sub.add_parser("persons", help="list enrolled persons")

    delete = sub.add_parser("delete", help="erase a person: every row and file")
    delete.add_argument("name")

    for name, text in (("eval", "evaluate on <identity>/<n>.jpg"), ("calibrate", "store a threshold")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("dir", type=Path)
        cmd.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
        if name == "eval":
            cmd.add_argument("--out", type=Path, default=Path("eval.json"), help="JSON report path")
            cmd.add_argument("--no-views", action="store_true", help="original only: skip generated views")
        else:
            cmd.add_argument("--target-fpir", type=float, default=None)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(
        config_file=args.config,
        data_dir=args.data_dir,
        detector=args.detector,
        embedder=args.embedder,
        insightface_root=args.insightface_root,
        insightface_pack=args.insightface_pack,
        match_mode=args.match_mode,
        sd_model=args.sd_model,
    )


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.command in ("eval", "calibrate"):
        from core.evaluation.commands import calibrate_command, eval_command

        command = eval_command if args.command == "eval" else calibrate_command
        return command(settings, args, _out)

    from core.service import ManyAnglesService

    service = ManyAnglesService.from_settings(settings)
    if args.command == "enroll":
        views = [v for v in args.views.split(",") if v.strip()] if args.views else None
        result = service.enroll(
            args.name,
            _read(args.photo),
            face=_face_policy(args),
            augment=args.augment or views is not None or args.num_variations is not None,
            views=views,
            num_variations=args.num_variations,
            seed=args.seed,
        )
        if args.json:
            _out(json.dumps(asdict(result)))
        else:
            _out(
                f"enrolled {result.name!r} as person {result.person_id} "
                f"({result.num_embeddings} embedding(s): {', '.join(result.sources)}; model {result.model})"
            )
            for view in result.views:
                _out(f"  view {view['view']}: {view['reason']}")
    elif args.command == "identify":
        found = service.identify(_read(args.photo), args.top_k)
        payload = [
            {
                "face": f.face.face.as_dict(),
                "identity": f.match.identity.name if f.match.identity else "unknown",
                "threshold": f.match.threshold,
                "candidates": [asdict(c) for c in f.match.candidates],
            }
            for f in found
        ]
        if args.json:
            _out(json.dumps(payload))
        elif not found:
            _out("no face found in the photo")
        for i, item in enumerate(payload if not args.json else []):
            top = ", ".join(f"{c['name']} {c['score']:.3f}" for c in item["candidates"][:3]) or "(empty gallery)"
            _out(f"face {i} at {item['face']['bbox']}: {item['identity']}   [{top}]")
    elif args.command == "verify":
        result = service.verify(_read(args.photo_a), _read(args.photo_b))
        _out(json.dumps(asdict(result)) if args.json else
             f"{'same person' if result.same_person else 'different persons'}: "
             f"score {result.score:.4f}, threshold {result.threshold:.4f} ({result.model})")
    elif args.command == "persons":
        persons = service.persons()
        if args.json:
            _out(json.dumps([asdict(p) for p in persons]))
        for p in persons if not args.json else []:
            _out(f"{p.id:6d}  {p.name}  ({p.num_images} image(s), {p.num_embeddings} embedding(s), {p.created_at})")
    elif args.command == "delete":
        counts = service.delete(args.name)
        _out(json.dumps(counts) if args.json else
             f"deleted {args.name!r}: {counts['images']} image(s), {counts['embeddings']} embedding(s), "
             f"{counts['files']} file(s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return run(args)
    except NotCalibrated as exc:
        log.error("%s", exc.message)
        return exc.exit_code
    except ManyAnglesError as exc:
        log.error("%s: %s", exc.code, exc.message)
        return exc.exit_code
    except ValueError as exc:  # bad settings values
        log.error("invalid setting: %s", exc)
        return 2
