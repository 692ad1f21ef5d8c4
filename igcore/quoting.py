"""Values quoted in one-line messages: control characters escaped, long values cut.

A config value can be megabytes long (a regex selector, a name); echoing it whole would flood the
terminal and the log on every failed reload. What is shown keeps its beginning and says how long
the whole value was.
"""

from __future__ import annotations

import re

# Characters of a value shown in a message; the rest is replaced by a note of the full length.
QUOTE_LIMIT = 120

# C0, DEL, C1, and the Unicode line and paragraph separators: each can start a new line somewhere.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` cut to `limit` characters plus `… (N characters)` when longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def quoted(text: str) -> str:
    """`text` in double quotes for a message, control characters escaped so it stays one line."""
    if len(text) > QUOTE_LIMIT:
        return '"' + _escaped(text[:QUOTE_LIMIT]) + f'…" ({len(text):,} characters)'
    return '"' + _escaped(text) + '"'


def one_line(text: str) -> str:
    """`text` with its control characters escaped (`\\n`, `\\x1b`), so it cannot break a line."""
    return _escaped(text)


def control_character(text: str) -> str | None:
    """The first control character of `text`, escaped (`\\n`, `\\x00`, `\\u2028`), or None."""
    found = _CONTROL.search(text)
    return None if found is None else _escaped(found.group())


def _escaped(text: str) -> str:
    return _CONTROL.sub(lambda m: _escape_one(m.group()), text)


def _escape_one(char: str) -> str:
    # repr escapes C0, DEL and C1; the separators it leaves as they are
    return f"\\u{ord(char):04x}" if char in "\u2028\u2029" else repr(char)[1:-1]
