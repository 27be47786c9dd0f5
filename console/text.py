"""Text from users (names, the service's messages) shown as written where Streamlit reads Markdown."""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation; these are the ones Markdown, Streamlit's
# colour/emoji directives (":red[...]") and its LaTeX ("$...$") would otherwise act on.
_ACTIVE = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|$~:])")
# GFM's literal autolinks (www., http(s)://, mailto:/xmpp:, name@host) are found in the parsed
# text, after the escapes are gone: an invisible WORD JOINER (U+2060) where each would start
# breaks them (seen in Chromium: "www.evil.com" in a name became a link).
_AUTOLINK = re.compile(r"(?i)\b(www(?=\.)|https?(?=:)|mailto(?=:)|xmpp(?=:))|(@)")
WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    """``text`` with every Markdown-active character escaped: "Ada *the* 1st" stays as typed, and
    neither a URL nor an e-mail address in it turns into a link."""
    unlinked = _AUTOLINK.sub(lambda m: m.group(0) + WORD_JOINER, str(text))
    return _ACTIVE.sub(r"\\\1", unlinked)
