"""Exact sums of ints and floats, cheap enough for every batch of events.

`_sum` of a histogram (and counters/gauges fed by a field) must be exact. Integers are summed as
Python ints. Floats are kept as an expansion: non-overlapping floats whose exact sum is the exact
sum of every float added. math.fsum returns the correctly rounded exact sum of its inputs, so
fsum(xs) is the leading part and fsum(xs + [-s1]) the exactly rounded remainder, and so on until it
is 0: each step runs in C over the batch, usually two steps. Fraction per value would be exact too,
but costs microseconds per event; fsum of a running float would be fast but drift across batches.
"""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = ["FloatParts", "float_parts", "split_sum", "merge_parts", "exact_value"]

# An exact sum: a Python int plus non-overlapping floats whose exact sum is the float part.
FloatParts = tuple[float, ...]


def float_parts(values: list[float]) -> FloatParts:
    terms = list(values)
    try:
        parts = []
        for _ in range(80):  # each part is >= 2**52 times smaller than the one before: ~40 at most
            s = math.fsum(terms)
            if s == 0.0:
                break
            if not math.isfinite(s):
                return (s,)
            parts.append(s)
            terms.append(-s)
        return tuple(parts)
    except (OverflowError, ValueError):  # inf - inf, or an overflowing sum: no exact value exists
        return (sum(values),)


def split_sum(values: list) -> tuple[int, FloatParts]:
    """The exact sum of `values` (ints, bools, floats) as an int and float parts."""
    if type(values[0]) is not float:
        total = sum(values)
        if type(total) is int:  # no float among them: the usual case, all in C
            return total, ()
    return (sum(v for v in values if type(v) is not float),
            float_parts([v for v in values if type(v) is float]))


def merge_parts(old: FloatParts, new: FloatParts) -> FloatParts:
    return float_parts([*old, *new]) if old else new


def exact_value(integer: int, parts: FloatParts) -> int | float:
    """The exact sum as one number: the int itself, or the correctly rounded float."""
    if not parts:
        return integer
    if integer == 0 or not math.isfinite(parts[0]):
        return parts[0]  # the leading part is the correctly rounded sum of the parts (inf/nan: sticky)
    if abs(integer) <= 2**53:  # exactly representable: fsum still rounds once, correctly
        return math.fsum((*parts, float(integer)))
    return float(Fraction(integer) + sum(map(Fraction, parts)))
