"""Values quoted in one-line messages: control characters escaped, long values cut.

A config value can be megabytes long (a regex selector, a name); echoing it whole would flood the
terminal and the log on every failed reload. What is shown keeps its beginning and says how long
the whole value was.
"""

from __future__ import annotations

import re

# Characters of a value shown in a message; the rest is replaced by a note of the full length.
QUOTE_LIMIT = 120

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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


def _escaped(text: str) -> str:
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
