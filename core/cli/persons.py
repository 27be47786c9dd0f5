"""``manyangles enroll | add-photo | identify | verify | persons | delete | rename | merge | images |
remove-image``: a person's photos in and out of the gallery, and a photo searched in it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.cli.flags import count
from core.cli.registry import command, out
from core.errors import InvalidInput
from core.results import EnrollResult
from core.schemas.gallery import DeleteResponse, ImageDeleteResponse, MergeResponse, PersonDetailOut, PersonOut
from core.schemas.results import EnrollResponse, IdentifyResponse, PersonVerifyResponse, VerifyResponse
from core.service import ManyAnglesService
from core.settings import Settings
from core.store.access_log import counted, log_command, log_command_view
from core.store.sqlutil import MAX_ROW_ID


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


def _photo_arguments(parser: argparse.ArgumentParser, force_help: str) -> None:
    """A person's name, a photo of them, and how its face and views are chosen (enroll, add-photo)."""
    parser.add_argument("name")
    parser.add_argument("photo")
    parser.add_argument("--largest", action="store_true", help="use the largest face if several")
    parser.add_argument("--face", type=int, help="use face N (0 = largest) if several")
    parser.add_argument("--augment", action="store_true", help="add generated views (identity-gated)")
    parser.add_argument("--views", help="comma-separated views, e.g. left,right,smiling")
    parser.add_argument("--num-variations", type=int, help="how many of the default views (default: all of them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help=force_help)


def _enroll_arguments(parser: argparse.ArgumentParser) -> None:
    _photo_arguments(parser, "enroll even if the face is identified as someone already enrolled")


def _add_photo_arguments(parser: argparse.ArgumentParser) -> None:
    _photo_arguments(parser, "add it even if it does not verify as them, or is identified as someone else")


def _photo_options(args: argparse.Namespace) -> dict[str, Any]:
    """The service's keyword arguments for a photo stored with its views (enroll, add-photo)."""
    views = [v for v in args.views.split(",") if v.strip()] if args.views else None
    return {
        "face": _face_policy(args),
        "augment": args.augment or views is not None or args.num_variations is not None,
        "views": views,
        "num_variations": args.num_variations,
        "seed": args.seed,
        "force": args.force,
    }


def _stored(settings: Settings, args: argparse.Namespace, result: EnrollResult) -> int:
    """Logs and prints what enroll or add-photo stored."""
    stored = f"{result.num_images} image(s), {result.num_embeddings} embedding(s)"
    log_command(settings, args.command.replace("-", "_"), [result.person_id], stored)
    if args.json:
        out(EnrollResponse.of(result).model_dump_json())
        return 0
    out(
        f"{'enrolled' if args.command == 'enroll' else 'added a photo of'} {result.name!r} as person "
        f"{result.person_id} ({result.num_embeddings} embedding(s): {', '.join(result.sources)}; model {result.model})"
    )
    for view in result.views:
        out(f"  view {view['view']}: {view['reason']}")
    return 0


@command("enroll", "enroll a person from one photo", _enroll_arguments)
def enroll(settings: Settings, args: argparse.Namespace) -> int:
    service = ManyAnglesService.from_settings(settings)
    options = _photo_options(args)
    return _stored(settings, args, service.enroll(args.name, _read(args.photo), **options))


@command("add-photo", "add another photo of an enrolled person (and views of it)", _add_photo_arguments)
def add_photo(settings: Settings, args: argparse.Namespace) -> int:
    service = ManyAnglesService.from_settings(settings)
    options = _photo_options(args)
    person = service.store.find_person(args.name)
    return _stored(settings, args, service.add_photo(person.id, _read(args.photo), **options))


def _identify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo")
    parser.add_argument("--top-k", dest="query_top_k", type=int, default=None, help="default: the top_k setting")


@command("identify", "identify every face in a photo", _identify_arguments)
def identify(settings: Settings, args: argparse.Namespace) -> int:
    service = ManyAnglesService.from_settings(settings)
    searched = service.identify(_read(args.photo), args.query_top_k)
    identified = [f.match.identity.person_id for f in searched.faces if f.match.identity is not None]
    log_command(settings, "identify", identified, f"{len(searched.faces)} face(s), {len(identified)} identified")
    found = IdentifyResponse.of(searched)
    if args.json:
        out(found.model_dump_json())
        return 0
    if not found.faces:
        out("no face found in the photo")
    for i, face in enumerate(found.faces):
        top = ", ".join(f"{c.name} {c.score:.3f}" for c in face.candidates[:3]) or "(empty gallery)"
        out(f"face {i} at {face.bbox}: {face.label}   [{top}]")
    return 0


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo_a")
    parser.add_argument("photo_b", nargs="?", help="the second photo; or --person")
    parser.add_argument(
        "--person", metavar="NAME", help="an enrolled person: is photo_a them? (scored as identify does)"
    )


def _verify_person(settings: Settings, args: argparse.Namespace, service: ManyAnglesService) -> None:
    """Is photo_a the enrolled person ``--person``?"""
    if args.photo_b is not None:
        raise InvalidInput("verify takes a second photo or --person NAME, not both")
    claimed = PersonVerifyResponse.of(service.verify_person(args.person, _read(args.photo_a)))
    log_command(settings, "verify", [claimed.person_id], f"same person: {'yes' if claimed.same_person else 'no'}")
    out(
        claimed.model_dump_json()
        if args.json
        else f"{'same person as' if claimed.same_person else 'not'} {claimed.name!r} (person {claimed.person_id}): "
        f"score {claimed.score:.4f}, threshold {claimed.threshold:.4f} ({_at(claimed.target_fmr)}, "
        f"{claimed.match_mode}, {claimed.model})"
    )


def _verify_photos(settings: Settings, args: argparse.Namespace, service: ManyAnglesService) -> None:
    """Are photo_a and photo_b the same person?"""
    if args.photo_b is None:
        raise InvalidInput("verify takes a second photo or --person NAME")
    verdict = VerifyResponse.of(service.verify(_read(args.photo_a), _read(args.photo_b)))
    log_command(settings, "verify", detail=f"same person: {'yes' if verdict.same_person else 'no'}")
    out(
        verdict.model_dump_json()
        if args.json
        else f"{'same person' if verdict.same_person else 'different persons'}: "
        f"score {verdict.score:.4f}, threshold {verdict.threshold:.4f} ({_at(verdict.target_fmr)}, {verdict.model})"
    )


@command("verify", "are two photos the same person? (or: is a photo this enrolled person?)", _verify_arguments)
def verify(settings: Settings, args: argparse.Namespace) -> int:
    service = ManyAnglesService.from_settings(settings)
    if args.person is not None:
        _verify_person(settings, args, service)
    else:
        _verify_photos(settings, args, service)
    return 0


def _persons_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", help="only names starting with this (case-sensitive)")


@command("persons", "list enrolled persons, in name order", _persons_arguments)
def list_persons(settings: Settings, args: argparse.Namespace) -> int:
    service = ManyAnglesService.from_settings(settings)
    persons = [PersonOut.of(p) for p in service.persons(args.prefix)]
    if args.json:
        out(json.dumps([p.model_dump() for p in persons]))
        return 0
    for p in persons:
        out(f"{p.id:6d}  {p.name}  ({p.num_images} image(s), {p.num_embeddings} embedding(s), {p.created_at})")
    return 0


def _name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")


@command("delete", "erase a person: every row and file", _name_argument)
def delete(settings: Settings, args: argparse.Namespace) -> int:
    service = ManyAnglesService.from_settings(settings)
    person = service.store.find_person(args.name)
    erased = service.delete(person.id)
    log_command(settings, "delete_person", detail=counted(erased))
    deleted = DeleteResponse.of(person.id, erased)
    out(
        deleted.model_dump_json()
        if args.json
        else f"deleted {args.name!r}: {deleted.images} image(s), {deleted.embeddings} embedding(s), "
        f"{deleted.files} file(s)"
    )
    return 0


def _rename_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("new_name")


@command("rename", "rename a person (the new name must be free)", _rename_arguments)
def rename(settings: Settings, args: argparse.Namespace) -> int:
    service = ManyAnglesService.from_settings(settings)
    renamed = PersonOut.of(service.store.rename_person(service.store.find_person(args.name).id, args.new_name))
    log_command(settings, "rename", [renamed.id])
    out(renamed.model_dump_json() if args.json else f"renamed {args.name!r} to {renamed.name!r} (person {renamed.id})")
    return 0


def _merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the person kept")
    parser.add_argument("other", help="the person merged into them (deleted)")
    parser.add_argument(
        "--force", action="store_true", help="merge even if a photo of the other does not verify as the person kept"
    )


@command(
    "merge", "merge a person enrolled twice into the other (their photos, views and vectors move)", _merge_arguments
)
def merge(settings: Settings, args: argparse.Namespace) -> int:
    service = ManyAnglesService.from_settings(settings)
    other = service.store.find_person(args.other)
    kept, moved = service.merge(service.store.find_person(args.name).id, other.id, args.force)
    log_command(settings, "merge", [kept.id], f"person {other.id}: {counted(moved)}")
    merged = MergeResponse(person=PersonOut.of(kept), merged=other.id, **moved)
    out(
        merged.model_dump_json()
        if args.json
        else f"merged {args.other!r} (person {other.id}) into {kept.name!r} (person {kept.id}): "
        f"{merged.images} image(s), {merged.embeddings} embedding(s) moved"
    )
    return 0


@command("images", "a person's images: id, source, display name", _name_argument)
def images(settings: Settings, args: argparse.Namespace) -> int:
    service = ManyAnglesService.from_settings(settings)
    detail = PersonDetailOut.of_detail(service.store.person_detail(service.store.find_person(args.name).id))
    log_command_view(settings, detail.id, "person record")
    if args.json:
        out(detail.model_dump_json())
        return 0
    for img in detail.images:
        of = f"  view of image {img.source_image_id}" if img.source_image_id is not None else ""
        out(f"{img.id:8d}  {img.source:24s} {img.display_name}  ({img.width}x{img.height}){of}")
    return 0


def _remove_image_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("image_id", type=count(1, MAX_ROW_ID))


@command("remove-image", "erase one image of a person (a view, or one of several photos)", _remove_image_arguments)
def remove_image(settings: Settings, args: argparse.Namespace) -> int:
    service = ManyAnglesService.from_settings(settings)
    person = service.store.find_person(args.name)
    counts = service.delete_image(person.id, args.image_id)
    log_command(settings, "delete_image", [person.id], f"image {args.image_id}: {counted(counts)}")
    removed = ImageDeleteResponse.of(person.id, args.image_id, counts)
    out(
        removed.model_dump_json()
        if args.json
        else f"removed image {args.image_id} of {args.name!r}"
        + (f" with the {removed.views} view(s) made from it" if removed.views else "")
        + f": {removed.embeddings} embedding(s), {removed.files} file(s)"
    )
    return 0
