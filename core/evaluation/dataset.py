"""Labelled face folders laid out as ``<identity>/<n>.<ext>``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import InvalidDataset

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass(frozen=True)
class Identity:
    name: str
    enrollment: Path  # 1.jpg (or the first photo in order)
    probes: tuple[Path, ...]  # the rest


@dataclass(frozen=True)
class LabelledFolder:
    root: Path
    identities: tuple[Identity, ...]

    @property
    def num_images(self) -> int:
        return sum(1 + len(i.probes) for i in self.identities)

    def all_images(self) -> list[Path]:
        return [p for i in self.identities for p in (i.enrollment, *i.probes)]


def _order(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 30, path.name)


def load_labelled_folder(root: Path, min_identities: int = 2) -> LabelledFolder:
    root = Path(root)
    if not root.is_dir():
        raise InvalidDataset(f"{root} is not a folder")
    identities = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = sorted(
            (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=_order,
        )
        if len(photos) >= 2:
            identities.append(Identity(folder.name, photos[0], tuple(photos[1:])))
    if len(identities) < min_identities:
        raise InvalidDataset(
            f"{root} holds {len(identities)} identity folder(s) with at least 2 photos; "
            f"need {min_identities} laid out as <identity>/<n>.jpg"
        )
    return LabelledFolder(root=root, identities=tuple(identities))
