"""The interfaces between the aggregators and what uses them, for the type checker.

`MetricBinding` is what an aggregator reads of its metric (config.BoundMetric, or a stand-in in a
test or a benchmark). `Aggregator` is what the engine and the collector read of every aggregator,
whichever family computes it (docs/architecture.md, "A new metric type").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..nativehist import NativeBucketing
from ..selectors import Predicate

if TYPE_CHECKING:
    from ..kernel.plan import Placement


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class MetricBinding(Protocol):
    """A metric as bound to its gadget's columns (read-only, as config.BoundMetric is frozen)."""

    @property
    def config(self) -> _Named: ...
    @property
    def label_columns(self) -> tuple[str, ...]: ...
    @property
    def label_names(self) -> tuple[str, ...]: ...
    @property
    def field_column(self) -> str | None: ...
    @property
    def predicate(self) -> Predicate | None: ...
    @property
    def family_name(self) -> str: ...
    @property
    def bounds(self) -> tuple[float, ...] | None: ...
    @property
    def description(self) -> str: ...
    @property
    def native(self) -> NativeBucketing | None: ...


class Aggregator(Protocol):
    """What the engine and the collector read of any metric's aggregator."""

    placement: Placement

    @property
    def bound(self) -> MetricBinding: ...
    @property
    def series_count(self) -> int: ...
    @property
    def series_dropped(self) -> int: ...
