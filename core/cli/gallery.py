"""``manyangles check``: the store's integrity; ``backup | restore | export | import``: the whole
gallery out and in; ``duplicates``: faces it holds twice."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

from core.cli.registry import command, out
from core.service import ManyAnglesService
from core.settings import Settings
from core.store import backup as backups
from core.store import transfer
from core.store.access_log import log_command
from core.store.audits import AuditSearch
from core.store.backup import BackupReport
from core.store.gallery import GalleryStore
from core.store.jobs import finish_job
from core.store.records import FaceConflict
from core.store.transfer import TransferReport

log = logging.getLogger(__name__)


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full", action="store_true", help="integrity_check: also every index against its table")


@command("check", "check the store (SQLite quick_check); remove files a crash left behind", _check_arguments)
def check(settings: Settings, args: argparse.Namespace) -> int:
    from core.store.maintenance import check_store

    report = check_store(GalleryStore.from_settings(settings), full=args.full)
    out(
        json.dumps(asdict(report))
        if args.json
        else f"integrity {report.integrity}; removed {report.orphan_files} orphan image file(s) and "
        f"{report.temp_files} half-written temp file(s)"
    )
    return 0


def _copied(settings: Settings, args: argparse.Namespace, copied: BackupReport) -> int:
    """Logs and prints what backup or restore copied."""
    log_command(settings, args.command, detail=f"{copied.persons} person(s), {copied.files} file(s)")
    done = f"{args.command}: {copied.persons} person(s), {copied.files} file(s) in {copied.seconds:.1f} s"
    out(json.dumps({**asdict(copied), "dest": str(copied.dest)}) if args.json else done)
    return 0


def _backup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", type=Path)


@command("backup", "copy the gallery (database + images) to DEST, while the service runs", _backup_arguments)
def backup(settings: Settings, args: argparse.Namespace) -> int:
    return _copied(settings, args, backups.backup(GalleryStore.from_settings(settings), args.dest))


def _restore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path)


@command("restore", "restore a backup into the (empty) data dir", _restore_arguments)
def restore(settings: Settings, args: argparse.Namespace) -> int:
    return _copied(settings, args, backups.restore(args.src, settings.data_dir, settings.store_url))


def _moved_text(args: argparse.Namespace, moved: TransferReport) -> str:
    """What export or import moved, for the plain-text answer."""
    done = (
        f"{args.command}: {moved.persons} person(s), {moved.images} image(s), {moved.embeddings} "
        f"embedding(s) in {moved.seconds:.1f} s"
    )
    if moved.skipped or moved.renamed or moved.merged:
        done += f"; skipped {len(moved.skipped)}, renamed {len(moved.renamed)}, merged {len(moved.merged)}"
    return done


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", type=Path)
    parser.add_argument("--no-images", action="store_true", help="tables only: for analytics, not importable")


@command("export", "the whole gallery as Parquet (+ image files) into the folder DEST", _export_arguments)
def export(settings: Settings, args: argparse.Namespace) -> int:
    store = GalleryStore.from_settings(settings)
    moved = transfer.export_gallery(store, args.dest, with_images=not args.no_images)
    log_command(settings, "export_gallery", detail="without images" if args.no_images else "with images")
    out(json.dumps(asdict(moved)) if args.json else _moved_text(args, moved))
    return 0


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path)
    parser.add_argument(
        "--on-conflict",
        choices=["skip", "rename", "merge"],
        default="skip",
        help="a name already in the gallery: leave it out, store it as 'NAME (2)', or add to that person",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="import a person whose face is already in the gallery under another name, and a merge whose "
        "face is identified as someone else (both are left out and reported otherwise)",
    )
    parser.add_argument(
        "--no-face-check",
        action="store_true",
        help="do not search the persons of the export in the gallery (no model is loaded)",
    )


def _face_conflict_text(found: FaceConflict, force: bool) -> str:
    """One person the import's face check stopped (or, with --force, let through), and why."""
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
    return f"{what}: {found.person!r} {why}"


def _face_check_text(report: TransferReport, force: bool) -> str:
    """What the import's face check found, for the plain-text answer."""
    if report.face_check == "off":
        return "; no face check"
    lines = [f"; face check: {report.face_check}"]
    if report.unchecked:
        lines.append(f"{len(report.unchecked)} person(s) not checked (no vector of that model in the export)")
    lines += [_face_conflict_text(found, force) for found in report.face_conflicts]
    if report.face_conflicts and not force:
        lines.append("--force imports them")
    return "\n".join(lines)


def _import(settings: Settings, store: GalleryStore, args: argparse.Namespace) -> TransferReport:
    check = None
    if not args.no_face_check:  # the active model, loaded: the threshold and views offset it identifies with
        from core.enroll.import_check import ImportFaceCheck

        check = ImportFaceCheck.of(ManyAnglesService.from_settings(settings))
        if check is None:
            log.warning("no face check: the active model has no identification threshold (`manyangles calibrate`)")
    return transfer.import_gallery(store, args.src, args.on_conflict, check, args.force)


@command("import", "add the persons of an export folder to the gallery", _import_arguments)
def import_gallery(settings: Settings, args: argparse.Namespace) -> int:
    store = GalleryStore.from_settings(settings)
    moved = _import(settings, store, args)
    log_command(settings, "import", detail=f"{moved.persons} person(s), {moved.images} image(s)")
    out(json.dumps(asdict(moved)) if args.json else _moved_text(args, moved) + _face_check_text(moved, args.force))
    return 0


def _duplicates_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--save",
        action="store_true",
        help="run it as a job and store the pairs: the API (GET /v1/duplicates/audit) and the console show them",
    )
    parser.add_argument("--job", type=int, help=argparse.SUPPRESS)  # a job the API created (POST /v1/duplicates/jobs)


def _audit_search(settings: Settings, args: argparse.Namespace) -> tuple[ManyAnglesService, AuditSearch]:
    """The service and what it identifies with (model, rule, threshold, views offset); a failure
    here ends the API's job with its reason, not as "interrupted"."""
    try:
        service = ManyAnglesService.from_settings(settings)
        return service, AuditSearch(service.model.name, service.rule(), service.threshold(), service.views_offset())
    except Exception as exc:
        if args.job is not None:
            finish_job(GalleryStore.from_settings(settings), args.job, False, f"failed: {exc}")
        raise


@command(
    "duplicates",
    "pairs of persons one of whose photos is identified as the other (faces enrolled twice, or twins)",
    _duplicates_arguments,
)
def duplicates(settings: Settings, args: argparse.Namespace) -> int:
    from core.search.duplicates import audit_duplicates, find_duplicates

    service, search = _audit_search(settings, args)
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
