"""The metric types a config may name, one entry each, and everything the core decides by type.

The config's checks, the family names, the engine's choice of aggregator, the kernel placement and
the generated C read this table and never compare type names; past that, the engine and the
collector know an aggregator only by its family (trace or gauge, metrics.aggregators), so a new type
touches this file and its aggregator (docs/architecture.md, "A new metric type"). In the style of
prometheus_client's metrics.py, where each class says its type.
"""

from __future__ import annotations

from dataclasses import dataclass

from .gadgets import Category
from .metrics.aggregators import CounterAggregator, GaugeAggregator, HistogramAggregator, TraceAggregator
from .metrics.kernel import KernelAggregator, KernelCounterAggregator, KernelHistogramAggregator
from .naming import COUNTER_SUFFIX


@dataclass(frozen=True)
class MetricType:
    name: str           # the config's `type:` word
    category: Category  # the gadgets it reads: trace (events as they come) or snapshot (rows at scrape)
    user: type[TraceAggregator] | type[GaugeAggregator]   # computes it from rows in user space
    kernel: type[KernelAggregator] | None   # computes it from BPF maps; None: never placed in the kernel
    observes: bool      # observes `field` (required) of each row, rather than counting rows or summing it
    buckets: bool       # takes `bucket:` (required), the buckets it observes `field` into
    family_suffix: str  # prometheus_client adds it to the series: a config name ending with it keeps one
    value: str          # what a series' value is (docs/config.md's table of types)

    @property
    def plural(self) -> str:
        """How messages name metrics of this type: "counters", "summaries"."""
        return f"{self.name[:-1]}ies" if self.name.endswith("y") else f"{self.name}s"


COUNTER = MetricType("counter", Category.TRACE, CounterAggregator, KernelCounterAggregator, observes=False,
                     buckets=False, family_suffix=COUNTER_SUFFIX, value="+1 per matching event, or + `field`")
GAUGE = MetricType("gauge", Category.SNAPSHOT, GaugeAggregator, None, observes=False, buckets=False,
                   family_suffix="", value="at each scrape: matching rows per label set, or the sum of `field`")
HISTOGRAM = MetricType("histogram", Category.TRACE, HistogramAggregator, KernelHistogramAggregator, observes=True,
                       buckets=True, family_suffix="",
                       value="observes `field` of each matching event (a numeric column)")

# In the order messages and docs list them.
METRIC_TYPES: dict[str, MetricType] = {t.name: t for t in (COUNTER, GAUGE, HISTOGRAM)}


def listed(names: list[str], last: str = "and") -> str:
    """["counters", "histograms"] -> "counters and histograms", as messages name types."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def types_reading(category: str) -> list[MetricType]:
    """The types a gadget of `category` ("trace", "snapshot") feeds."""
    return [t for t in METRIC_TYPES.values() if t.category.value == category]
