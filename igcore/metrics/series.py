"""What a series holds, and what a batch (or a pull of a BPF map) adds to it.

Both aggregator families (rows in user space, `metrics.aggregators`; BPF maps read at scrape,
`metrics.kernel`) turn their input into `Move`s and add them to the same `SeriesState`, so
exposition, the series cap and the sweep read one shape (docs/architecture.md, the data path).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..nativehist import NativeCounts
from .exact import FloatParts, merge_parts
from .exemplars import Example


@dataclass(slots=True)
class Move:
    """What one batch (or one pull) adds to a series: `rows` counted, the exact sum of the value
    (the row count, or the field's values), and for a histogram {bucket index: hits}; for a native
    histogram its buckets (`native`: count and buckets; the sum is the move's exact sum)."""

    rows: int
    integer: int
    parts: FloatParts = ()
    buckets: dict[int, int] | None = None
    native: NativeCounts | None = None


@dataclass(slots=True)
class SeriesState:
    """A series' value: an exact sum (an int and float parts, `metrics.exact`), the bucket counts
    of a histogram (not cumulative, +Inf last) or a native histogram's, and the clock when it last
    moved (the sweep reads it). With --exemplars, the latest event per bucket index (a counter's is
    0): they go with the series."""

    moved: float
    integer: int = 0
    parts: FloatParts = ()
    buckets: list[int] | None = None
    examples: dict[int, Example] | None = None
    native: NativeCounts | None = None

    def add(self, move: Move, now: float) -> None:
        self.integer += move.integer
        if move.parts:
            self.parts = merge_parts(self.parts, move.parts)
        if move.buckets:
            counts = self.buckets
            assert counts is not None, "a histogram's move reached a series without buckets"
            for index, hits in move.buckets.items():
                counts[index] += hits
        if move.native is not None:
            assert self.native is not None, "a native histogram's move reached a series without native buckets"
            _add_native(self.native, move.native)
        self.moved = now


def _add_native(into: NativeCounts, more: NativeCounts) -> None:
    """Per bucket of a move (a batch has few), not per row."""
    into.count += more.count
    into.zero += more.zero
    for mine, theirs in ((into.positive, more.positive), (into.negative, more.negative)):
        for index, hits in theirs.items():
            mine[index] = mine.get(index, 0) + hits
