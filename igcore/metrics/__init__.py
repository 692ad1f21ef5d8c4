"""Aggregators (state per metric, read at scrape time) and the shared snapshot cache for gauges."""
