"""The CLI's registry: each subcommand is declared where its handler is, by ``@command``, with its
name, its help and the function that adds its arguments, so that a subcommand is read (and
changed) in one place; ``main`` only builds the parser from these records and dispatches."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from core.settings import Settings

Handler = Callable[[Settings, argparse.Namespace], int]
"""Runs a parsed subcommand; returns the exit code (errors are raised as ManyAnglesError)."""

Arguments = Callable[[argparse.ArgumentParser], None]
"""Adds a subcommand's arguments to its parser."""


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """For a subcommand that takes none."""


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, the help line its parent lists, its arguments and its handler."""

    name: str
    help: str
    arguments: Arguments
    handler: Handler

    def add_to(self, sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(self.name, help=self.help)
        self.arguments(parser)
        return parser


def command(name: str, help: str, arguments: Arguments = no_arguments) -> Callable[[Handler], Command]:
    """Declares the decorated handler as the subcommand ``name``."""

    def register(handler: Handler) -> Command:
        return Command(name, help, arguments, handler)

    return register


def dispatch(commands: tuple[Command, ...], name: str, settings: Settings, args: argparse.Namespace) -> int:
    """Runs the command called ``name``, one the parser accepted."""
    return next(c for c in commands if c.name == name).handler(settings, args)


def out(text: str) -> None:
    """A result, on standard output (diagnostics go to standard error, through logging)."""
    sys.stdout.write(text + "\n")
