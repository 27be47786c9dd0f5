"""Text from users (names, the service's messages) shown as written where Streamlit reads Markdown."""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation; these are the ones Markdown, Streamlit's
# colour/emoji directives (":red[...]") and its LaTeX ("$...$") would otherwise act on.
_ACTIVE = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|$~:])")


def plain(text: object) -> str:
    """``text`` with every Markdown-active character escaped: "Ada *the* 1st" stays as typed."""
    return _ACTIVE.sub(r"\\\1", str(text))
