"""``manyangles backup | restore | export | import``: the whole gallery out and in; ``duplicates``:
faces it holds twice; ``access-log``: who did what, over HTTP and here."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from core.settings import Settings
from core.store.access_log import log_command
from core.store.gallery import GalleryStore
from core.store.transfer import TransferReport

log = logging.getLogger(__name__)
COMMANDS = ("backup", "restore", "export", "import", "duplicates", "access-log")


def add_gallery_commands(sub: argparse._SubParsersAction) -> None:
    backup = sub.add_parser("backup", help="copy the gallery (database + images) to DEST, while the service runs")
    backup.add_argument("dest", type=Path)
    restore = sub.add_parser("restore", help="restore a backup into the (empty) data dir")
    restore.add_argument("src", type=Path)
    export = sub.add_parser("export", help="the whole gallery as Parquet (+ image files) into the folder DEST")
    export.add_argument("dest", type=Path)
    export.add_argument("--no-images", action="store_true", help="tables only: for analytics, not importable")
    imp = sub.add_parser("import", help="add the persons of an export folder to the gallery")
    imp.add_argument("src", type=Path)
    imp.add_argument(
        "--on-conflict",
        choices=["skip", "rename", "merge"],
        default="skip",
        help="a name already in the gallery: leave it out, store it as 'NAME (2)', or add to that person",
    )
    imp.add_argument(
        "--force",
        action="store_true",
        help="import a person whose face is already in the gallery under another name, and a merge whose "
        "face is identified as someone else (both are left out and reported otherwise)",
    )
    imp.add_argument(
        "--no-face-check",
        action="store_true",
        help="do not search the persons of the export in the gallery (no model is loaded)",
    )
    dup = sub.add_parser(
        "duplicates",
        help="pairs of persons one of whose photos is identified as the other (faces enrolled twice, or twins)",
    )
    dup.add_argument(
        "--save",
        action="store_true",
        help="run it as a job and store the pairs: the API (GET /v1/duplicates/audit) and the console show them",
    )
    dup.add_argument("--job", type=int, help=argparse.SUPPRESS)  # a job the API created (POST /v1/duplicates/jobs)
    access = sub.add_parser(
        "access-log", help="who did what, over HTTP and on the command line (newest first), as GET /v1/access-log"
    )
    access.add_argument("--limit", type=int, default=50, help="entries to show (default 50)")
    access.add_argument("--action", help="only this action (enroll, identify, delete_person, ...)")
    access.add_argument("--person", type=int, help="only this person id")
    access.add_argument("--key", help="only this key's name (a command's: 'command line (USER)')")
    access.add_argument(
        "--since", help="at or after this time, ISO 8601 (2026-11-28 or 2026-11-28T09:00; no offset: UTC)"
    )
    access.add_argument("--until", help="before this time, ISO 8601 (as --since)")


def _face_check_text(report: TransferReport, force: bool) -> str:
    """What the import's face check found, for the plain-text answer."""
    if report.face_check == "off":
        return "; no face check"
    lines = [f"; face check: {report.face_check}"]
    if report.unchecked:
        lines.append(f"{len(report.unchecked)} person(s) not checked (no vector of that model in the export)")
    for found in report.face_conflicts:
        what = "imported anyway" if force else "left out"
        if found.reason == "already_enrolled":
            why = f"is identified as {found.match!r} (person {found.match_id}, score {found.score:.4f})"
        elif found.reason == "another_person":
            why = (
                f"would join {found.into!r} but is identified as {found.match!r} (person {found.match_id}, "
                f"score {found.score:.4f})"
            )
        else:
            scored = "" if found.score is None else f" (score {found.score:.4f} < {found.threshold:.4f})"
            why = f"would join {found.into!r} but is not identified as them{scored}"
        lines.append(f"{what}: {found.person!r} {why}")
    if report.face_conflicts and not force:
        lines.append("--force imports them")
    return "\n".join(lines)


def _import(settings: Settings, store: GalleryStore, args: argparse.Namespace) -> TransferReport:
    from core.store import transfer

    check = None
    if not args.no_face_check:  # the active model, loaded: the threshold and views offset it identifies with
        from core.enroll.import_check import ImportFaceCheck
        from core.service import ManyAnglesService

        check = ImportFaceCheck.of(ManyAnglesService.from_settings(settings))
        if check is None:
            log.warning("no face check: the active model has no identification threshold (`manyangles calibrate`)")
    return transfer.import_gallery(store, args.src, args.on_conflict, check, args.force)


def _duplicates(settings: Settings, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from core.search.duplicates import audit_duplicates, find_duplicates
    from core.service import ManyAnglesService
    from core.store.audits import AuditSearch
    from core.store.jobs import finish_job

    try:
        service = ManyAnglesService.from_settings(settings)  # the threshold and offset it identifies with
        search = AuditSearch(service.model.name, service.rule(), service.threshold(), service.views_offset())
    except Exception as exc:
        if args.job is not None:  # the API's job ends with the reason, not as "interrupted"
            finish_job(GalleryStore(settings.data_dir), args.job, False, f"failed: {exc}")
        raise
    if args.save or args.job is not None:
        pairs = audit_duplicates(service.store, search, args.job)
    else:
        pairs = find_duplicates(service.store, search.model, search.match_mode, search.threshold, search.views_offset)
    if args.job is None:  # the API's job (POST /v1/duplicates/jobs) logged itself
        log_command(settings, "duplicates_job" if args.save else "duplicates", detail=f"{len(pairs)} pair(s)")
    if args.json:
        out(json.dumps([asdict(p) for p in pairs]))
        return 0
    for p in pairs:
        out(f"{p.score:.4f}  {p.name!r} (person {p.person_id})  ~  {p.other!r} (person {p.other_id})")
    out(f"{len(pairs)} pair(s) at {search.match_mode} >= {search.threshold:.4f} ({search.model})")
    return 0


def _moment(flag: str, value: str | None) -> datetime | None:
    from core.errors import InvalidInput

    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{flag} {value!r} is not an ISO 8601 date or time (2026-11-28, 2026-11-28T09:00)") from None


def _access_log(settings: Settings, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from core.errors import InvalidInput
    from core.store.access_log import ACTIONS, access_page, stored_time

    if args.action is not None and args.action not in ACTIONS:
        raise InvalidInput(f"unknown action {args.action!r}; actions: {', '.join(ACTIONS)}")
    if args.limit < 1:
        raise InvalidInput("--limit must be at least 1")
    bounds = [_moment(flag, value) for flag, value in (("--since", args.since), ("--until", args.until))]
    if bounds[0] is not None and bounds[1] is not None and stored_time(bounds[1]) <= stored_time(bounds[0]):
        raise InvalidInput("--until must be after --since")
    store = GalleryStore(settings.data_dir)
    entries, total = access_page(store, args.limit, 0, args.action, args.person, args.key, *bounds)
    if args.json:
        out(json.dumps({"entries": [asdict(e) for e in entries], "total": total}))
        return 0
    for e in entries:
        person = "" if e.person_id is None else f"  person {e.person_id} ({e.name})"
        key = e.key_name if e.key_id is None else f"{e.key_name} (key {e.key_id})"
        out(f"{e.at}  {e.action:<14} {key}{person}  {e.detail}".rstrip())
    out(f"{len(entries)} of {total} entr{'y' if total == 1 else 'ies'}")
    return 0


def gallery_command(settings: Settings, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    if args.command == "duplicates":
        return _duplicates(settings, args, out)
    if args.command == "access-log":
        return _access_log(settings, args, out)
    if args.command in ("backup", "restore"):
        from core.store import backup as backups

        if args.command == "backup":
            copied = backups.backup(GalleryStore(settings.data_dir), args.dest)
        else:
            copied = backups.restore(args.src, settings.data_dir)
        log_command(settings, args.command, detail=f"{copied.persons} person(s), {copied.files} file(s)")
        done = f"{args.command}: {copied.persons} person(s), {copied.files} file(s) in {copied.seconds:.1f} s"
        out(json.dumps({**asdict(copied), "dest": str(copied.dest)}) if args.json else done)
        return 0
    from core.store import transfer

    store = GalleryStore(settings.data_dir)
    if args.command == "export":
        moved = transfer.export_gallery(store, args.dest, with_images=not args.no_images)
    else:
        moved = _import(settings, store, args)
    if args.command == "export":
        log_command(settings, "export_gallery", detail="without images" if args.no_images else "with images")
    else:
        log_command(settings, "import", detail=f"{moved.persons} person(s), {moved.images} image(s)")
    done = (
        f"{args.command}: {moved.persons} person(s), {moved.images} image(s), {moved.embeddings} "
        f"embedding(s) in {moved.seconds:.1f} s"
    )
    if moved.skipped or moved.renamed or moved.merged:
        done += f"; skipped {len(moved.skipped)}, renamed {len(moved.renamed)}, merged {len(moved.merged)}"
    if args.command == "import":
        done += _face_check_text(moved, args.force)
    out(json.dumps(asdict(moved)) if args.json else done)
    return 0
