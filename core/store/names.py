"""A person's name as stored: normalised (NFC, trimmed), bounded, nothing hidden in it; and
the prefix of a name as a range of the name index."""

from __future__ import annotations

import unicodedata

from core.errors import InvalidName

MAX_NAME_LENGTH = 200
_LAST_CODE_POINT = "\U0010ffff"
# Zero-width (non-)joiners are part of how names are spelt in Persian and Indic scripts (and of
# emoji sequences); every other format character (bidi overrides, ...) can only disguise a name.
_JOINERS = frozenset("\u200c\u200d")


def name_prefix(prefix: str | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause selecting names that start with ``prefix`` as a range of the name index
    (LIKE would scan: it is case-insensitive and the index is not)."""
    if not prefix:
        return "", ()
    cleaned = unicodedata.normalize("NFC", prefix)
    return "WHERE p.name >= ? AND p.name < ?", (cleaned, cleaned + _LAST_CODE_POINT)


def normalise_name(name: str) -> str:
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise InvalidName("the person's name is empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidName(f"the person's name is longer than {MAX_NAME_LENGTH} characters")
    hidden = [ch for ch in cleaned if unicodedata.category(ch).startswith("C") and ch not in _JOINERS]
    if hidden:
        raise InvalidName(
            f"the person's name contains a control or invisible formatting character (U+{ord(hidden[0]):04X})"
        )
    return cleaned
