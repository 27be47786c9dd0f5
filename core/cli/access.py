"""``manyangles keys create | list | revoke``: the API's keys and their scopes; ``access-log``: who
did what, over HTTP and here."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from datetime import datetime

from core.cli.flags import count
from core.cli.registry import Command, command, dispatch, out
from core.errors import InvalidInput
from core.settings import Settings
from core.store.access_log import ACTIONS, access_page, log_command, stored_time
from core.store.gallery import GalleryStore
from core.store.keys import KeyStore
from core.store.sqlutil import MAX_ROW_ID

# The name this warning has always carried on standard error, from before the commands had modules.
log = logging.getLogger("core.cli")


def _key_store(settings: Settings) -> KeyStore:
    return KeyStore(GalleryStore.from_settings(settings))


def _create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scope", required=True, choices=["admin", "enroll", "identify"])
    parser.add_argument("--name", required=True, help="who or what uses it")


@command("create", "make a key; it is printed once and stored hashed", _create_arguments)
def create_key(settings: Settings, args: argparse.Namespace) -> int:
    record, secret = _key_store(settings).create(args.name, args.scope)
    log_command(settings, "key_create", detail=f"key {record.id}, scope {record.scope}")
    log.warning("created API key %d (%s, scope %s): it is shown once, below", record.id, record.name, record.scope)
    out(json.dumps({**asdict(record), "key": secret}) if args.json else secret)
    return 0


@command("list", "every key: id, name, scope, first characters, revoked")
def list_keys(settings: Settings, args: argparse.Namespace) -> int:
    records = _key_store(settings).records()
    if args.json:
        out(json.dumps([asdict(r) for r in records]))
        return 0
    for r in records:
        state = f"revoked {r.revoked_at}" if r.revoked_at else "active"
        out(f"{r.id:4d}  {r.scope:8s}  {r.prefix}...  {r.name}  (created {r.created_at}, {state})")
    return 0


def _revoke_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=count(1, MAX_ROW_ID))


@command("revoke", "stop a key from working", _revoke_arguments)
def revoke_key(settings: Settings, args: argparse.Namespace) -> int:
    record = _key_store(settings).revoke(args.id)
    log_command(settings, "key_revoke", detail=f"key {record.id}, scope {record.scope}")
    out(json.dumps(asdict(record)) if args.json else f"revoked key {record.id} ({record.name}, {record.scope})")
    return 0


KEY_COMMANDS: tuple[Command, ...] = (create_key, list_keys, revoke_key)


def _keys_arguments(parser: argparse.ArgumentParser) -> None:
    keys_sub = parser.add_subparsers(dest="keys_command", required=True)
    for key_command in KEY_COMMANDS:
        key_command.add_to(keys_sub)


@command("keys", "API keys with scopes (admin, enroll, identify)", _keys_arguments)
def keys(settings: Settings, args: argparse.Namespace) -> int:
    return dispatch(KEY_COMMANDS, args.keys_command, settings, args)


def _access_log_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=50, help="entries to show (default 50)")
    parser.add_argument("--action", help="only this action (enroll, identify, delete_person, ...)")
    parser.add_argument("--person", type=int, help="only this person id")
    parser.add_argument("--key", help="only this key's name (a command's: 'command line (USER)')")
    parser.add_argument(
        "--since", help="at or after this time, ISO 8601 (2026-11-28 or 2026-11-28T09:00; no offset: UTC)"
    )
    parser.add_argument("--until", help="before this time, ISO 8601 (as --since)")


def _moment(flag: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{flag} {value!r} is not an ISO 8601 date or time (2026-11-28, 2026-11-28T09:00)") from None


@command(
    "access-log",
    "who did what, over HTTP and on the command line (newest first), as GET /v1/access-log",
    _access_log_arguments,
)
def access_log(settings: Settings, args: argparse.Namespace) -> int:
    if args.action is not None and args.action not in ACTIONS:
        raise InvalidInput(f"unknown action {args.action!r}; actions: {', '.join(ACTIONS)}")
    if args.limit < 1:
        raise InvalidInput("--limit must be at least 1")
    bounds = [_moment(flag, value) for flag, value in (("--since", args.since), ("--until", args.until))]
    if bounds[0] is not None and bounds[1] is not None and stored_time(bounds[1]) <= stored_time(bounds[0]):
        raise InvalidInput("--until must be after --since")
    store = GalleryStore.from_settings(settings)
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
