"""`ig prometheus --check`: every validation rule of the config reference, as the user sees it.

Each bad config must exit 2 with exactly one line on stderr naming the metric and the problem,
and never a traceback. The gadgets are the synthetic ones (trace synth, snapshot synth).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.igrun import IG, check

OK_COUNTER = "{name: m, type: counter, category: trace, gadget: synth}"


def metrics(*items: str) -> str:
    return "metrics_name: t\nmetrics:\n" + "".join(f"  - {i}\n" for i in items)


CASES = [
    ("missing metrics_name", f"metrics: [{OK_COUNTER}]", ["metrics_name"]),
    ("empty metrics_name", f"metrics_name: ''\nmetrics: [{OK_COUNTER}]", ["metrics_name", "empty"]),
    ("metrics missing", "metrics_name: t", ["metrics"]),
    ("metrics not a list", "metrics_name: t\nmetrics: {a: 1}", ["metrics must be a list"]),
    ("metric without name", metrics("{type: counter, category: trace, gadget: synth}"), ["metrics[0]", "name"]),
    ("metric without type", metrics("{name: m, category: trace, gadget: synth}"), ['metric "m"', "type"]),
    ("metric without category", metrics("{name: m, type: counter, gadget: synth}"), ['metric "m"', "category"]),
    ("metric without gadget", metrics("{name: m, type: counter, category: trace}"), ['metric "m"', "gadget"]),
    ("unknown type", metrics("{name: m, type: summary, category: trace, gadget: synth}"), ['metric "m"', "unknown type"]),
    ("unknown category", metrics("{name: m, type: counter, category: top, gadget: synth}"), ['metric "m"', "unknown category"]),
    ("unknown gadget", metrics("{name: m, type: counter, category: trace, gadget: nope}"), ['metric "m"', 'unknown gadget "nope"', "synth"]),
    ("counter on snapshot", metrics("{name: m, type: counter, category: snapshot, gadget: synth}"), ['metric "m"', "counter needs a trace gadget"]),
    ("histogram on snapshot", metrics("{name: m, type: histogram, category: snapshot, gadget: synth, field: size, bucket: {type: exp2, min: 0, max: 3}}"),
     ['metric "m"', "histogram needs a trace gadget"]),
    ("gauge on trace", metrics("{name: m, type: gauge, category: trace, gadget: synth}"), ['metric "m"', "gauge needs a snapshot gadget"]),
    ("unknown label column", metrics("{name: m, type: counter, category: trace, gadget: synth, labels: [comn]}"),
     ['metric "m"', 'unknown column "comn" in labels', 'did you mean "comm"', "columns: pid"]),
    ("unknown field column", metrics("{name: m, type: counter, category: trace, gadget: synth, field: latncy}"),
     ['metric "m"', 'unknown column "latncy" in field', 'did you mean "latency"']),
    ("unknown selector column", metrics("{name: m, type: counter, category: trace, gadget: synth, selector: ['comn:cat']}"),
     ['metric "m"', 'unknown column "comn"', 'did you mean "comm"']),
    ("non-numeric field", metrics("{name: m, type: counter, category: trace, gadget: synth, field: comm}"), ['metric "m"', "not numeric"]),
    ("histogram without field", metrics("{name: m, type: histogram, category: trace, gadget: synth, bucket: {type: exp2, min: 0, max: 3}}"),
     ['metric "m"', "histogram needs field"]),
    ("histogram without bucket", metrics("{name: m, type: histogram, category: trace, gadget: synth, field: latency}"),
     ['metric "m"', "histogram needs bucket"]),
    ("bucket type", metrics("{name: m, type: histogram, category: trace, gadget: synth, field: latency, bucket: {type: log, min: 0, max: 3}}"),
     ['metric "m"', 'unknown bucket type "log"']),
    ("max <= min", metrics("{name: m, type: histogram, category: trace, gadget: synth, field: latency, bucket: {type: exp2, min: 3, max: 3}}"),
     ['metric "m"', "max (3) must be greater than min (3)"]),
    ("negative min", metrics("{name: m, type: histogram, category: trace, gadget: synth, field: latency, bucket: {type: linear, min: -1, max: 3}}"),
     ['metric "m"', "min must not be negative"]),
    ("duplicate names", metrics(OK_COUNTER, OK_COUNTER), ['"m"', "duplicate"]),
    ("unknown key in metric", metrics("{name: m, type: counter, category: trace, gadget: synth, lables: [comm]}"),
     ['metric "m"', 'unknown key "lables"', 'did you mean "labels"']),
    ("unknown top-level key", f"metrics_name: t\nmetrcs: []\nmetrics: [{OK_COUNTER}]", ['key "metrcs"', 'did you mean "metrics"']),
    ("unknown key in bucket", metrics("{name: m, type: histogram, category: trace, gadget: synth, field: latency, bucket: {type: exp2, min: 0, max: 3, mutliplier: 2}}"),
     ['metric "m"', 'unknown key "mutliplier"']),
    ("selector not a number", metrics("{name: m, type: counter, category: trace, gadget: synth, selector: ['pid:abc']}"),
     ['metric "m"', '"abc" is not a number']),
    ("another language's not-equal", metrics("{name: m, type: counter, category: trace, gadget: synth, selector: ['comm:!=cat']}"),
     ['metric "m"', '"!=" is not an operator', "write comm:!cat", 'comm:!"=cat"', "(rules: comm:cat equal, comm:!cat not equal,"]),
    ("=> on a number", metrics("{name: m, type: counter, category: trace, gadget: synth, selector: ['pid:=>0']}"),
     ['metric "m"', '"=>" is not an operator', "write pid:>=0", "pid:>=5 >5 <=5 <5"]),
    ("regex on a number", metrics("{name: m, type: counter, category: trace, gadget: synth, selector: ['pid:~1']}"),
     ['metric "m"', "needs a string column"]),
    ("yaml syntax", "metrics_name: t\nmetrics: [\n", ["line"]),
]


@pytest.mark.parametrize("config, phrases", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_exits_2_with_one_line(config, phrases, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(config)
    result = check(f"@{path}")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("Error: ") and str(path) in lines[0]
    for phrase in phrases:
        assert phrase in lines[0]


def test_missing_file_is_one_line():
    result = check("@/nonexistent/config.yaml")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "/nonexistent/config.yaml" in result.stderr


def test_good_config_passes(tmp_path):
    result = check(metrics(OK_COUNTER))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_bad_flag_is_a_usage_error():
    result = subprocess.run([IG, "prometheus", "--check", "--metrics-listen-address", "nowhere"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "--metrics-listen-address" in result.stderr


def test_check_says_where_each_metric_is_computed_as_the_docs_show():
    """docs/config.md's example of --check is what ig prints (run from the repository's root)."""
    root = Path(__file__).resolve().parents[1]
    docs = (root / "docs" / "config.md").read_text()
    block = docs[docs.index("$ ig prometheus --check --config @examples/selectors.yaml"):]
    block = block[:block.index("```")].splitlines()
    result = subprocess.run([IG, "prometheus", "--check", "--config", "@examples/selectors.yaml"], cwd=root,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == block[1:]
    forced = subprocess.run([IG, "prometheus", "--check", "--no-kernel-aggregation", "--config", "@examples/selectors.yaml"],
                            cwd=root, capture_output=True, text=True, timeout=60)
    assert "  not_cat: in user space (trace exec): --no-kernel-aggregation is set" in forced.stdout.splitlines()


def test_a_quoted_literal_passes_and_goes_to_the_kernel(tmp_path):
    """The way docs/config.md gives to select a value that starts with an operator character."""
    path = tmp_path / "literal.yaml"
    path.write_text("metrics_name: t\nmetrics:\n  - name: eq\n    type: counter\n    category: trace\n    gadget: exec\n"
                    "    selector:\n      - comm:!\"=cat\"\n")
    result = subprocess.run([IG, "prometheus", "--check", "--config", f"@{path}"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "  eq: in the kernel (a BPF map of trace exec)" in result.stdout.splitlines()
