"""Turning pydantic's validation errors into one sentence each; pydantic's wording never shows."""

from __future__ import annotations

import difflib

from pydantic_core import ErrorDetails

from ..quoting import quoted
from .model import MODELS_BY_SCOPE
from .text import describe

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "tuple_type": "a list",
    "list_type": "a list",
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "decimal_type": "a number",
}

# difflib's cost grows with the length of the word; a key longer than this is no typo of a key.
_SUGGEST_LIMIT = 100


def explain(error: ErrorDetails, data: dict) -> tuple[str, str]:
    """(`metric "x": ` or `metrics[2]: ` or "", the problem) for one pydantic error."""
    loc = error["loc"]
    if len(loc) >= 2 and loc[0] == "metrics" and isinstance(loc[1], int):
        return _metric_label(data, loc[1]), _problem(error, loc[2:], ("metric",))
    return "", _problem(error, loc, ())


def _metric_label(data: dict, index: int) -> str:
    items = data.get("metrics")
    item = items[index] if isinstance(items, list) and index < len(items) else None
    name = item.get("name") if isinstance(item, dict) else None
    return f"metric {quoted(name)}: " if isinstance(name, str) and name.strip() else f"metrics[{index}]: "


def _problem(error: ErrorDetails, path: tuple, scope: tuple) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in ("missing", "extra_forbidden"):
        return _key_problem(kind, path, scope)
    phrase = _phrase(path)
    if kind == "literal_error":
        expected = error["ctx"]["expected"].replace("'", "")
        return f"unknown {phrase} {describe(value)} (expected {expected})"
    if kind == "greater_than_equal":
        return f"{phrase} must not be negative, got {describe(value)}"
    if kind in _EXPECTED:
        return _type_problem(phrase, _EXPECTED[kind], value)
    # Not reachable with these models today; still one line, and not pydantic's wording.
    return f"{phrase or 'the config'} has an invalid value {describe(value)}"


def _type_problem(phrase: str, expected: str, value: object) -> str:
    if not phrase:  # the metric item itself
        return f"each metric must be a mapping with name, type, category and gadget, got {describe(value)}"
    return f"{phrase} must be {expected}, got {describe(value)}"


def _key_problem(kind: str, path: tuple, scope: tuple) -> str:
    key, parent = path[-1], path[:-1]
    inside = f" in {_phrase(parent)}" if parent else ""
    if kind == "missing":
        return f'missing required key "{key}"{inside}'
    fields = MODELS_BY_SCOPE[scope + tuple(p for p in parent if isinstance(p, str))].model_fields
    allowed = [f.alias or name for name, f in fields.items()]   # as written in a config (`schema`)
    word = str(key)
    guess = difflib.get_close_matches(word, allowed, n=1, cutoff=0.6) if len(word) <= _SUGGEST_LIMIT else []
    hint = f'did you mean "{guess[0]}"? ' if guess else ""
    level = "top-level " if not scope and not parent else ""
    return f"unknown {level}key {quoted(word)}{inside} ({hint}allowed keys: {', '.join(allowed)})"


def _phrase(path: tuple) -> str:
    """('bucket', 'min') -> 'bucket min'; ('labels', 0) -> 'labels[0]'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f" {part}" if text else str(part))
    return text
