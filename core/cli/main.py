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
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.cli.batch import COMMANDS as MODEL_COMMANDS
from core.cli.batch import add_model_commands, model_command
from core.cli.flags import add_settings_arguments, count, settings_from_args
from core.cli.gallery import COMMANDS as GALLERY_COMMANDS
from core.cli.gallery import add_gallery_commands, gallery_command
from core.errors import InvalidInput, ManyAnglesError
from core.schemas.gallery import DeleteResponse, ImageDeleteResponse, MergeResponse, PersonDetailOut, PersonOut
from core.schemas.results import EnrollResponse, IdentifyResponse, PersonVerifyResponse, VerifyResponse
from core.settings import Settings
from core.store.access_log import counted, log_command, log_command_view
from core.store.sqlutil import MAX_ROW_ID

log = logging.getLogger("core.cli.main")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _at(target_fmr: float | None) -> str:
    """Where a one-to-one threshold is set."""
    return "the identification threshold" if target_fmr is None else f"FMR {target_fmr:g}"


def _read(path: str) -> bytes:
    file = Path(path)
    if not file.exists():
        raise InvalidInput(f"{path}: no such file")
    if not file.is_file():
        raise InvalidInput(f"{path}: not a file")
    return file.read_bytes()


def _face_policy(args: argparse.Namespace) -> str | int:
    if args.face is not None:
        return int(args.face)
    return "largest" if args.largest else "single"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manyangles", description="ManyAngles face enrollment")
    parser.add_argument("--json", action="store_true", help="print JSON (the HTTP API's shapes)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_settings_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    enroll = sub.add_parser("enroll", help="enroll a person from one photo")
    add_photo = sub.add_parser("add-photo", help="add another photo of an enrolled person (and views of it)")
    for cmd in (enroll, add_photo):
        cmd.add_argument("name")
        cmd.add_argument("photo")
        cmd.add_argument("--largest", action="store_true", help="use the largest face if several")
        cmd.add_argument("--face", type=int, help="use face N (0 = largest) if several")
        cmd.add_argument("--augment", action="store_true", help="add generated views (identity-gated)")
        cmd.add_argument("--views", help="comma-separated views, e.g. left,right,smiling")
        cmd.add_argument("--num-variations", type=int, help="how many of the default views (default: all of them)")
        cmd.add_argument("--seed", type=int, default=0)
    enroll.add_argument(
        "--force", action="store_true", help="enroll even if the face is identified as someone already enrolled"
    )
    add_photo.add_argument(
        "--force",
        action="store_true",
        help="add it even if it does not verify as them, or is identified as someone else",
    )

    identify = sub.add_parser("identify", help="identify every face in a photo")
    identify.add_argument("photo")
    identify.add_argument("--top-k", dest="query_top_k", type=int, default=None, help="default: the top_k setting")

    verify = sub.add_parser("verify", help="are two photos the same person? (or: is a photo this enrolled person?)")
    verify.add_argument("photo_a")
    verify.add_argument("photo_b", nargs="?", help="the second photo; or --person")
    verify.add_argument(
        "--person", metavar="NAME", help="an enrolled person: is photo_a them? (scored as identify does)"
    )

    listing = sub.add_parser("persons", help="list enrolled persons, in name order")
    listing.add_argument("--prefix", help="only names starting with this (case-sensitive)")

    check = sub.add_parser("check", help="check the store (SQLite quick_check); remove files a crash left behind")
    check.add_argument("--full", action="store_true", help="integrity_check: also every index against its table")
    keys = sub.add_parser("keys", help="API keys with scopes (admin, enroll, identify)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a key; it is printed once and stored hashed")
    create.add_argument("--scope", required=True, choices=["admin", "enroll", "identify"])
    create.add_argument("--name", required=True, help="who or what uses it")
    keys_sub.add_parser("list", help="every key: id, name, scope, first characters, revoked")
    revoke = keys_sub.add_parser("revoke", help="stop a key from working")
    revoke.add_argument("id", type=count(1, MAX_ROW_ID))

    delete = sub.add_parser("delete", help="erase a person: every row and file")
    delete.add_argument("name")
    rename = sub.add_parser("rename", help="rename a person (the new name must be free)")
    rename.add_argument("name")
    rename.add_argument("new_name")
    merge = sub.add_parser(
        "merge", help="merge a person enrolled twice into the other (their photos, views and vectors move)"
    )
    merge.add_argument("name", help="the person kept")
    merge.add_argument("other", help="the person merged into them (deleted)")
    merge.add_argument(
        "--force", action="store_true", help="merge even if a photo of the other does not verify as the person kept"
    )
    images = sub.add_parser("images", help="a person's images: id, source, display name")
    images.add_argument("name")
    remove = sub.add_parser("remove-image", help="erase one image of a person (a view, or one of several photos)")
    remove.add_argument("name")
    remove.add_argument("image_id", type=count(1, MAX_ROW_ID))

    add_model_commands(sub)
    add_gallery_commands(sub)

    for name, text in (("eval", "evaluate on <identity>/<n>.jpg"), ("calibrate", "store a threshold")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("dir", type=Path)
        cmd.add_argument("--workers", type=count(), default=None, help="processes (default: all cores)")
        cmd.add_argument("--no-views", action="store_true", help="original only: skip generated views")
        cmd.add_argument(
            "--cache", type=Path, default=None, help="keep embeddings here between runs (keyed by photo and models)"
        )
        if name == "eval":
            cmd.add_argument("--out", type=Path, default=Path("eval.json"), help="JSON report path")
            cmd.add_argument("--seeds", type=int, default=10, help="random identity splits of the cross-validation")
            cmd.add_argument(
                "--unseen-repeats",
                type=int,
                default=20,
                help="nested check: select on half the identities, measure on the other half, this many times (0: skip)",
            )
        else:
            cmd.add_argument(
                "--target-fpir",
                dest="calibrate_fpir",
                type=float,
                default=None,
                help="default: the target_fpir setting",
            )
            cmd.add_argument(
                "--gallery-size",
                type=count(1),
                default=None,
                help="persons the target FPIR must hold for (default: half the folder's identities); "
                "a larger gallery needs a higher threshold, and a folder with enough impostor pairs to measure it",
            )
    return parser


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    for name in settings.unknown_environment():
        log.warning("environment variable %s names no setting; ignored", name)
    if args.command in ("eval", "calibrate"):
        from core.cli.evaluation import calibrate_command, eval_command

        command = eval_command if args.command == "eval" else calibrate_command
        return command(settings, args, _out)

    if args.command == "keys":
        return _keys(settings, args)
    if args.command in MODEL_COMMANDS:
        return model_command(settings, args, _out)
    if args.command in GALLERY_COMMANDS:
        return gallery_command(settings, args, _out)
    if args.command == "check":
        from core.store.gallery import GalleryStore
        from core.store.maintenance import check_store

        report = check_store(GalleryStore(settings.data_dir), full=args.full)
        _out(
            json.dumps(asdict(report))
            if args.json
            else f"integrity {report.integrity}; removed {report.orphan_files} orphan image file(s) and "
            f"{report.temp_files} half-written temp file(s)"
        )
        return 0

    from core.service import ManyAnglesService

    service = ManyAnglesService.from_settings(settings)
    if args.command in ("enroll", "add-photo"):
        views = [v for v in args.views.split(",") if v.strip()] if args.views else None
        options: dict[str, Any] = {
            "face": _face_policy(args),
            "augment": args.augment or views is not None or args.num_variations is not None,
            "views": views,
            "num_variations": args.num_variations,
            "seed": args.seed,
            "force": args.force,
        }
        if args.command == "enroll":
            result = service.enroll(args.name, _read(args.photo), **options)
        else:
            person = service.store.find_person(args.name)
            result = service.add_photo(person.id, _read(args.photo), **options)
        stored = f"{result.num_images} image(s), {result.num_embeddings} embedding(s)"
        log_command(settings, args.command.replace("-", "_"), [result.person_id], stored)
        if args.json:
            _out(EnrollResponse.of(result).model_dump_json())
            return 0
        _out(
            f"{'enrolled' if args.command == 'enroll' else 'added a photo of'} {result.name!r} as person "
            f"{result.person_id} ({result.num_embeddings} embedding(s): {', '.join(result.sources)}; model {result.model})"
        )
        for view in result.views:
            _out(f"  view {view['view']}: {view['reason']}")
    elif args.command == "identify":
        searched = service.identify(_read(args.photo), args.query_top_k)
        identified = [f.match.identity.person_id for f in searched.faces if f.match.identity is not None]
        log_command(settings, "identify", identified, f"{len(searched.faces)} face(s), {len(identified)} identified")
        found = IdentifyResponse.of(searched)
        if args.json:
            _out(found.model_dump_json())
            return 0
        if not found.faces:
            _out("no face found in the photo")
        for i, face in enumerate(found.faces):
            top = ", ".join(f"{c.name} {c.score:.3f}" for c in face.candidates[:3]) or "(empty gallery)"
            _out(f"face {i} at {face.bbox}: {face.label}   [{top}]")
    elif args.command == "verify" and args.person is not None:
        if args.photo_b is not None:
            raise InvalidInput("verify takes a second photo or --person NAME, not both")
        claimed = PersonVerifyResponse.of(service.verify_person(args.person, _read(args.photo_a)))
        log_command(settings, "verify", [claimed.person_id], f"same person: {'yes' if claimed.same_person else 'no'}")
        _out(
            claimed.model_dump_json()
            if args.json
            else f"{'same person as' if claimed.same_person else 'not'} {claimed.name!r} (person {claimed.person_id}): "
            f"score {claimed.score:.4f}, threshold {claimed.threshold:.4f} ({_at(claimed.target_fmr)}, "
            f"{claimed.match_mode}, {claimed.model})"
        )
    elif args.command == "verify":
        if args.photo_b is None:
            raise InvalidInput("verify takes a second photo or --person NAME")
        verdict = VerifyResponse.of(service.verify(_read(args.photo_a), _read(args.photo_b)))
        log_command(settings, "verify", detail=f"same person: {'yes' if verdict.same_person else 'no'}")
        _out(
            verdict.model_dump_json()
            if args.json
            else f"{'same person' if verdict.same_person else 'different persons'}: "
            f"score {verdict.score:.4f}, threshold {verdict.threshold:.4f} ({_at(verdict.target_fmr)}, {verdict.model})"
        )
    elif args.command == "persons":
        persons = [PersonOut.of(p) for p in service.persons(args.prefix)]
        if args.json:
            _out(json.dumps([p.model_dump() for p in persons]))
            return 0
        for p in persons:
            _out(f"{p.id:6d}  {p.name}  ({p.num_images} image(s), {p.num_embeddings} embedding(s), {p.created_at})")
    elif args.command == "delete":
        person = service.store.find_person(args.name)
        erased = service.delete(person.id)
        log_command(settings, "delete_person", detail=counted(erased))
        deleted = DeleteResponse.of(person.id, erased)
        _out(
            deleted.model_dump_json()
            if args.json
            else f"deleted {args.name!r}: {deleted.images} image(s), {deleted.embeddings} embedding(s), "
            f"{deleted.files} file(s)"
        )
    elif args.command == "rename":
        renamed = PersonOut.of(service.store.rename_person(service.store.find_person(args.name).id, args.new_name))
        log_command(settings, "rename", [renamed.id])
        _out(
            renamed.model_dump_json()
            if args.json
            else f"renamed {args.name!r} to {renamed.name!r} (person {renamed.id})"
        )
    elif args.command == "merge":
        other = service.store.find_person(args.other)
        kept, moved = service.merge(service.store.find_person(args.name).id, other.id, args.force)
        log_command(settings, "merge", [kept.id], f"person {other.id}: {counted(moved)}")
        merged = MergeResponse(person=PersonOut.of(kept), merged=other.id, **moved)
        _out(
            merged.model_dump_json()
            if args.json
            else f"merged {args.other!r} (person {other.id}) into {kept.name!r} (person {kept.id}): "
            f"{merged.images} image(s), {merged.embeddings} embedding(s) moved"
        )
    elif args.command == "images":
        detail = PersonDetailOut.of_detail(service.store.person_detail(service.store.find_person(args.name).id))
        log_command_view(settings, detail.id, "person record")
        if args.json:
            _out(detail.model_dump_json())
            return 0
        for img in detail.images:
            of = f"  view of image {img.source_image_id}" if img.source_image_id is not None else ""
            _out(f"{img.id:8d}  {img.source:24s} {img.display_name}  ({img.width}x{img.height}){of}")
    elif args.command == "remove-image":
        person = service.store.find_person(args.name)
        counts = service.delete_image(person.id, args.image_id)
        log_command(settings, "delete_image", [person.id], f"image {args.image_id}: {counted(counts)}")
        removed = ImageDeleteResponse.of(person.id, args.image_id, counts)
        _out(
            removed.model_dump_json()
            if args.json
            else f"removed image {args.image_id} of {args.name!r}"
            + (f" with the {removed.views} view(s) made from it" if removed.views else "")
            + f": {removed.embeddings} embedding(s), {removed.files} file(s)"
        )
    return 0


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from core.store.gallery import GalleryStore
    from core.store.keys import KeyStore

    keys = KeyStore(GalleryStore(settings.data_dir))
    if args.keys_command == "create":
        record, secret = keys.create(args.name, args.scope)
        log_command(settings, "key_create", detail=f"key {record.id}, scope {record.scope}")
        log.warning("created API key %d (%s, scope %s): it is shown once, below", record.id, record.name, record.scope)
        _out(json.dumps({**asdict(record), "key": secret}) if args.json else secret)
    elif args.keys_command == "list":
        records = keys.records()
        if args.json:
            _out(json.dumps([asdict(r) for r in records]))
        for r in records if not args.json else []:
            state = f"revoked {r.revoked_at}" if r.revoked_at else "active"
            _out(f"{r.id:4d}  {r.scope:8s}  {r.prefix}...  {r.name}  (created {r.created_at}, {state})")
    else:
        record = keys.revoke(args.id)
        log_command(settings, "key_revoke", detail=f"key {record.id}, scope {record.scope}")
        _out(json.dumps(asdict(record)) if args.json else f"revoked key {record.id} ({record.name}, {record.scope})")
    return 0


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
