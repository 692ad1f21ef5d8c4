"""What a series holds, and what a batch (or a pull of a BPF map) adds to it.

Both aggregator families (rows in user space, `metrics.aggregators`; BPF maps read at scrape,
`metrics.kernel`) turn their input into `Move`s and add them to the same `SeriesState`, so
exposition, the series cap and the sweep read one shape (docs/architecture.md, the data path).
"""

from __future__ import annotations

from dataclasses import dataclass

from .exact import FloatParts, merge_parts
from .exemplars import Example


@dataclass(slots=True)
class Move:
    """What one batch (or one pull) adds to a series: `rows` counted, the exact sum of the value
    (the row count, or the field's values), and for a histogram {bucket index: hits}."""

    rows: int
    integer: int
    parts: FloatParts = ()
    buckets: dict[int, int] | None = None


@dataclass(slots=True)
class SeriesState:
    """A series' value: an exact sum (an int and float parts, `metrics.exact`), the bucket counts
    of a histogram (not cumulative, +Inf last), and the clock when it last moved (the sweep reads it).
    With --exemplars, the latest event per bucket index (a counter's is 0): they go with the series."""

    moved: float
    integer: int = 0
    parts: FloatParts = ()
    buckets: list[int] | None = None
    examples: dict[int, Example] | None = None

    def add(self, move: Move, now: float) -> None:
        self.integer += move.integer
        if move.parts:
            self.parts = merge_parts(self.parts, move.parts)
        if move.buckets:
            counts = self.buckets
            assert counts is not None, "a histogram's move reached a series without buckets"
            for index, hits in move.buckets.items():
                counts[index] += hits
        self.moved = now
