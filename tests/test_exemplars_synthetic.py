"""Exemplars through a real `ig prometheus` on the synthetic gadget: off by default, OpenMetrics only,
kept across a reload (docs/config.md, Exemplars)."""

from __future__ import annotations

import signal
import time

from prometheus_client.openmetrics.parser import text_string_to_metric_families

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
COUNTER = "  - {name: events, type: counter, category: trace, gadget: synth, labels: [comm]}\n"
HISTOGRAM = ("  - {name: lat, type: histogram, category: trace, gadget: synth, field: latency,\n"
             "     bucket: {type: linear, min: 1, max: 3, multiplier: 10}}\n")
CONFIG = "metrics_name: ex\nmetrics:\n" + COUNTER


def exemplars(ig) -> dict[tuple[str, tuple], object]:
    """(sample name, sorted labels) -> exemplar, for the samples of the OpenMetrics scrape that have one."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.exemplar
            for family in text_string_to_metric_families(ig.text(OPENMETRICS)) for s in family.samples if s.exemplar}


def test_exemplars_are_off_by_default(run_ig, synth):
    feed, _ = synth
    ig = run_ig(CONFIG, "--host")
    feed.send({"comm": "cat", "pid": 42})
    assert ig.wait_for("events_total", 1, comm="cat") == 1
    assert exemplars(ig) == {}


def test_the_openmetrics_scrape_names_the_latest_event_and_a_reload_keeps_them(run_ig, synth, tmp_path):
    feed, _ = synth
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    ig = run_ig(f"@{path}", "--host", "--exemplars")
    before = time.time()
    feed.send({"comm": "cat", "pid": 41}, {"comm": "cat", "pid": 42}, {"comm": "sh", "pid": 7})
    assert ig.wait_for("events_total", 2, comm="cat") == 2
    got = exemplars(ig)
    cat = got[("events_total", (("comm", "cat"),))]
    assert cat.labels == {"pid": "42", "comm": "cat"} and cat.value == 1
    assert before - 1 < cat.timestamp.sec + cat.timestamp.nsec / 1e9 < time.time() + 1   # no event time: arrival
    assert got[("events_total", (("comm", "sh"),))].labels == {"pid": "7", "comm": "sh"}
    assert " # {" not in ig.text()   # the text format 0.0.4 has no exemplars

    path.write_text(CONFIG + HISTOGRAM)
    ig.proc.send_signal(signal.SIGHUP)
    assert ig.wait_value("ig_config_reloads_total", 1, result="success") == 1
    feed.send({"comm": "cat", "pid": 43, "latency": 15})
    assert ig.wait_for("events_total", 3, comm="cat") == 3 and ig.wait_for("lat_count", 1) == 1
    got = exemplars(ig)
    assert got[("events_total", (("comm", "cat"),))].labels["pid"] == "43"
    assert got[("lat_bucket", (("le", "20.0"),))].labels == {"pid": "43", "comm": "cat"}
    assert got[("lat_bucket", (("le", "20.0"),))].value == 15
