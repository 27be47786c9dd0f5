"""The CLI's registry: every subcommand declared in core/cli/ is one `manyangles` offers, once
(`keys create | list | revoke` under `keys`)."""

from __future__ import annotations

import importlib
import pkgutil

import core.cli
from core.cli.access import KEY_COMMANDS
from core.cli.main import COMMANDS, build_parser
from core.cli.registry import Command


def test_every_declared_subcommand_is_registered_once():
    declared = {
        value.name
        for info in pkgutil.iter_modules(core.cli.__path__, "core.cli.")
        for value in vars(importlib.import_module(info.name)).values()
        if isinstance(value, Command)
    }
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names)) and set(names) | {c.name for c in KEY_COMMANDS} == declared
    offered = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert list(offered) == names
