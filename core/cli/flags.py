"""Command-line flags for every setting, generated from the Settings model (one source)."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import Any

from core.settings import Settings

_BOOL = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _bool(text: str) -> bool:
    try:
        return _BOOL[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}") from None


def count(least: int = 1, most: int | None = None) -> typing.Callable[[str], int]:
    """An argparse type for a whole number in [least, most] (workers, batch sizes, row ids): a
    value out of range is a usage error naming the range, not a traceback further on."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{text} is too small: at least {least}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"{text} is too large: at most {most}")
        return value

    return parse


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """``--<field>`` for every setting; values are validated by the Settings model."""
    group = parser.add_argument_group("settings (also MANYANGLES_<NAME> variables or a --config YAML file)")
    group.add_argument("--config", type=Path, help="YAML settings file (env MANYANGLES_CONFIG)")
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": field.description or ""}
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is typing.Literal:
            kwargs["choices"] = list(args)
            if all(isinstance(a, str) and a.isupper() for a in args):
                kwargs["type"] = str.upper
        elif annotation is bool:
            kwargs["type"] = _bool
            kwargs["metavar"] = "true|false"
        if name == "api_key":
            kwargs["help"] += " (prefer MANYANGLES_API_KEY: flags show in process lists)"
        group.add_argument(flag(name), **kwargs)


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags = {name: getattr(args, name, None) for name in Settings.model_fields}
    return Settings.load(config_file=getattr(args, "config", None), **flags)
