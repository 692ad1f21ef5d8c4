"""Wording shared by the config's messages: how a value is described, and one-line text."""

from __future__ import annotations

from ..quoting import quoted, shorten

# The longest message a config error may be: a value quoted in it is already cut, this is the
# backstop for text that comes from a library (a YAML problem, an unexpected exception).
MESSAGE_LIMIT = 2000


def describe(value: object) -> str:
    """A value as the user wrote it, for "got ..." in a message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return shorten(str(value))


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Whitespace runs (newlines too) as one space, cut to `limit` characters."""
    return shorten(" ".join(text.split()), limit)
