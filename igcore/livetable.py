"""The lines of `ig trace` and `ig snapshot` table output: one row, one line, within the terminal's width.

A line the terminal wraps splits values in two and puts rows on several lines, so the layout is
chosen once from the width: text columns narrow first (a longer value is cut with "…"), then
columns are left out, numbers before text, from the right. `-o wide` cuts nothing (docs/config.md,
Watching rows live).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.cells import cell_len, set_cell_size

from .columns import Column

GAP = "  "
ELLIPSIS = "…"

# Widths by kind, for a column that declares none (Column.width: wider ones for long text); a header is never cut.
_BY_KIND = {"str": 16, "int": 7, "uint": 10, "float": 10, "bool": 5}
_TEXT_FLOOR = 10    # a text column narrows to this (or its header), no further
_REST_FLOOR = 24    # the last text column (args) takes what is left: this at least, if its usual width is more


@dataclass
class Layout:
    """Where each shown column goes; `rest` says whether the last one takes the rest of the line."""

    columns: list[str]
    widths: list[int]
    rest: bool
    left_out: list[str] = field(default_factory=list)
    wide: bool = False

    def line(self, values: list[str]) -> str:
        cells = [self._cell(v, w) for v, w in zip(values, self.widths)]
        return GAP.join(cells).rstrip()

    def _cell(self, value: str, width: int) -> str:
        value = one_line(value)
        cells = cell_len(value)   # a wide character (CJK, emoji) takes two
        if self.wide or cells <= width:
            return value + " " * (width - cells)
        return set_cell_size(value, width - 1) + ELLIPSIS

    def header(self) -> str:
        return self.line([c.upper() for c in self.columns])


def one_line(value: str) -> str:
    """A row is one line whatever a value holds: a path or an argument may hold a newline, a tab or
    a terminal's escape sequence, each shown as a space."""
    return value if value.isprintable() else "".join(c if c.isprintable() else " " for c in value)


# A shown column: (name, kind, its natural width: the column's, or its kind's, and never less than its name).
_Shown = tuple[str, str, int]


def layout(columns: list[Column], width: int | None) -> Layout:
    """`columns`: in the order shown; `width`: the terminal's, or None for `-o wide`."""
    names = [c.name for c in columns]
    shown: list[_Shown] = [(c.name, c.kind.value, max(len(c.name), c.width or _BY_KIND[c.kind.value]))
                           for c in columns]
    if width is None:
        return Layout(names, [natural for _, _, natural in shown], rest=False, wide=True)
    left_out: list[str] = []
    while True:
        fitted = _fit(shown, width)
        if fitted is not None or len(shown) == 1:
            break
        left_out.append(shown.pop(_next_to_leave_out(shown))[0])
    if fitted is None:   # one column wider than the terminal: it is cut at the edge
        fitted = [width]
    left_out.sort(key=names.index)
    return Layout([n for n, _, _ in shown], fitted, rest=shown[-1][1] == "str", left_out=left_out)


def _fit(columns: list[_Shown], width: int) -> list[int] | None:
    """Widths that fit `width`, narrowing text columns as far as their floors, or None."""
    rest = columns[-1][1] == "str"
    fixed = columns[:-1] if rest else columns
    widths = [natural for _, _, natural in fixed]
    floors = [max(len(n), _TEXT_FLOOR) if k == "str" else w for (n, k, _), w in zip(fixed, widths)]
    room = width - len(GAP) * (len(columns) - 1)
    need = max(len(columns[-1][0]), min(columns[-1][2], _REST_FLOOR)) if rest else 0
    excess = sum(widths) + need - room
    while excess > 0:
        slack = [w - f for w, f in zip(widths, floors)]
        if not slack or max(slack) <= 0:
            return None
        widest = slack.index(max(slack))   # the column with most to give narrows first
        widths[widest] -= 1
        excess -= 1
    if rest:
        widths.append(room - sum(widths))
    return widths


def _next_to_leave_out(columns: list[_Shown]) -> int:
    """Numbers go first, from the right; then text, the usually short first (names, addresses and
    paths say most); the first column (the container) and a last text column (args) stay longest."""
    last = len(columns) - 1 if columns[-1][1] == "str" else len(columns)
    candidates = list(range(1, last)) or [len(columns) - 1]
    numbers = [i for i in candidates if columns[i][1] != "str"]
    if numbers:
        return numbers[-1]
    return min(reversed(candidates), key=lambda i: columns[i][2])
