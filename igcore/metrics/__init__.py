"""Aggregators (state per metric, read at scrape time) and the shared snapshot cache for gauges."""

from .aggregators import CounterAggregator, GaugeAggregator, HistogramAggregator, TraceAggregator
from .snapshots import SnapshotCache

__all__ = ["TraceAggregator", "CounterAggregator", "HistogramAggregator", "GaugeAggregator", "SnapshotCache"]
