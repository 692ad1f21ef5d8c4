"""Rows checked against their gadget's schema where they enter the core, so one bad row is dropped
and counted instead of failing a batch, a scrape, or the reader thread that delivered it.

A row must be a dict holding every one of the gadget's own columns (the container columns are the
core's to add) with a value of the column's kind: `int` for int, `int` >= 0 for uint, a finite
`float` (or `int`) for float, `str` for str, `bool` for bool. Anything else is a bad row, with one
of the reasons in `REASONS`.

The check runs once per row, column by column over the whole batch, in C: `sum` of an int column
raises or stops being an int at the first non-integer, `"".join` of a str column raises at the
first non-string, `min` finds a negative uint, `math.isfinite` a NaN. Only a batch that fails
this fast pass is walked row by row (in Python) to find and drop the bad rows. bench/pipeline
prints the cost.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from operator import itemgetter
from typing import Callable

from .columns import CONTAINER_COLUMN_NAMES, Kind, Schema

__all__ = ["RowChecker", "BadRows", "REASONS"]

log = logging.getLogger("igcore.rows")

REASONS = ("not_a_dict", "missing_column", "wrong_type", "not_finite", "negative_uint")
# The reasons _problem can give a value of each kind: every (column, reason) a gadget's rows can
# break is exported from 0 (docs/config.md, ig's own metrics).
KIND_PROBLEMS = {Kind.STR: ("wrong_type",), Kind.BOOL: ("wrong_type",), Kind.INT: ("wrong_type",),
                 Kind.UINT: ("wrong_type", "negative_uint"), Kind.FLOAT: ("wrong_type", "not_finite")}
LOG_EVERY_SECONDS = 60.0
SHOWN_VALUE_CHARS = 60


def shown(value: object) -> str:
    """`repr(value)` cut to a readable length for a log line."""
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + f"... ({len(text)} chars)"


# --- the per-value rule of each kind (the slow path, and the definition) -----------------------

def _problem(kind: Kind, value: object) -> str | None:
    """The reason `value` does not fit a column of `kind`, or None."""
    if kind is Kind.STR:
        return None if isinstance(value, str) else "wrong_type"
    if kind is Kind.BOOL:
        return None if isinstance(value, bool) else "wrong_type"
    if kind is Kind.FLOAT:
        if not isinstance(value, (int, float)):
            return "wrong_type"
        try:
            return None if math.isfinite(value) else "not_finite"
        except OverflowError:  # an int too big for a float
            return "not_finite"
    if not isinstance(value, int):  # INT, UINT
        return "wrong_type"
    return "negative_uint" if kind is Kind.UINT and value < 0 else None


# --- the per-batch pass of each kind (the fast path): True when every value fits ---------------

def _ints(values: list) -> bool:
    return type(sum(values)) is int  # a str raises TypeError, a float turns the sum into a float


def _uints(values: list) -> bool:
    return _ints(values) and min(values) >= 0


def _floats(values: list) -> bool:
    return set(map(type, values)) <= {float, int} and all(map(math.isfinite, values))


def _strs(values: list) -> bool:
    "".join(values)  # raises TypeError at the first value that is not a str
    return True


def _bools(values: list) -> bool:
    return set(map(type, values)) <= {bool}


_BATCH_PASS: dict[Kind, Callable[[list], bool]] = {
    Kind.INT: _ints, Kind.UINT: _uints, Kind.FLOAT: _floats, Kind.STR: _strs, Kind.BOOL: _bools,
}


class BadRows:
    """Counts of dropped rows of one gadget by (column, reason), and the rate-limited log line."""

    def __init__(self, gadget: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.gadget = gadget
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._last_logged: float | None = None
        self.possible: tuple[tuple[str, str], ...] = ()  # (column, reason) pairs its checker can count

    def add(self, column: str, reason: str, value: object) -> None:
        now = self._clock()
        with self._lock:
            self._counts[(column, reason)] += 1
            total = sum(self._counts.values())
            quiet = self._last_logged is not None and now - self._last_logged < LOG_EVERY_SECONDS
            if not quiet:
                self._last_logged = now
        if not quiet:
            if reason == "missing_column":
                what = f"column {column!r} is missing"
            else:
                what = f"column {column!r} is {shown(value)}" if column else f"the row is {shown(value)}"
            log.warning("gadget %s: dropped a bad row: %s (%s); %d bad row(s) so far, counted in "
                        "ig_bad_rows_total, logged at most once a minute", self.gadget, what, reason, total,
                        extra={"gadget": self.gadget, "reason": reason})

    def counts(self, with_zeros: bool = False) -> dict[tuple[str, str], int]:
        """(column, reason) -> rows dropped; `with_zeros`: every possible pair, those not seen at 0."""
        with self._lock:
            return {**dict.fromkeys(self.possible if with_zeros else (), 0), **self._counts}

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


class RowChecker:
    """`checker(rows)` -> the rows that fit the schema; the others are counted in `bad`."""

    def __init__(self, schema: Schema, bad: BadRows) -> None:
        # The gadget's own columns only: the enricher adds the container columns after this check.
        self.columns = tuple((c.name, c.kind) for c in schema if c.name not in CONTAINER_COLUMN_NAMES)
        self._passes = tuple((itemgetter(name), _BATCH_PASS[kind]) for name, kind in self.columns)
        self.bad = bad
        bad.possible = (("", "not_a_dict"), *((name, reason) for name, kind in self.columns
                                              for reason in ("missing_column", *KIND_PROBLEMS[kind])))

    def __call__(self, rows: list) -> list:
        if self._fits(rows):
            return rows
        return [row for row in rows if self._row_fits(row)]

    def _fits(self, rows: list) -> bool:
        """The fast pass: True when every row of the batch fits (False means: look row by row)."""
        if not rows:
            return True
        try:
            for getter, fits in self._passes:
                if not fits(list(map(getter, rows))):
                    return False
        except (KeyError, TypeError, ValueError, OverflowError):
            return False  # a missing column, a row that is no dict, a value of the wrong type
        return True

    def _row_fits(self, row: object) -> bool:
        if not isinstance(row, dict):
            self.bad.add("", "not_a_dict", row)
            return False
        for name, kind in self.columns:
            if name not in row:
                self.bad.add(name, "missing_column", None)
                return False
            reason = _problem(kind, row[name])
            if reason is not None:
                self.bad.add(name, reason, row[name])
                return False
        return True
