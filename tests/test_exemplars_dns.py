"""trace dns's exemplars through a real `ig prometheus --exemplars` (docs/config.md, Exemplars): the
queried name, cut to OpenMetrics' 128 characters, no pid or comm (a socket filter knows neither),
and the packet's time made wall-clock from the kernel's monotonic clock."""

from __future__ import annotations

import random
import subprocess
import time

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from .fixtures.requirements import need_binary

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def test_a_query_counter_names_the_latest_queried_name(run_ig, require_bpf):
    dig = need_binary("dig")
    address = f"127.53.{random.randrange(1, 250)}.{random.randrange(1, 250)}"   # nobody answers: the queries count
    ig = run_ig(f"{{metrics_name: dns, metrics: [{{name: queries, type: counter, category: trace, gadget: dns, "
                f"selector: ['qr:Q', 'dstIP:{address}']}}]}}", "--host", "--exemplars", "--no-kernel-aggregation")
    long_name = ".".join(c * 63 for c in "abc") + ".example.test"   # 205 characters with the root's dot
    before = time.time()
    for name in ("first.example.test", long_name):
        subprocess.run([dig, "+tries=1", "+time=1", f"@{address}", name], capture_output=True)
    assert ig.wait_for("queries_total", 2) == 2, ig.text()

    sample = next(s for family in text_string_to_metric_families(ig.text(OPENMETRICS))
                  for s in family.samples if s.name == "queries_total")
    exemplar = sample.exemplar
    assert exemplar.labels == {"name": (long_name + ".")[:128 - len("name")]}
    assert before - 1 < exemplar.timestamp.sec + exemplar.timestamp.nsec / 1e9 < time.time()
