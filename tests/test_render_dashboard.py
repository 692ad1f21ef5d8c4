"""tools/monitoring/render-dashboard.py draws the heatmap of whatever range Prometheus returns,
without a warning: the guide's transcript is compared with what the script prints. With
`--container` it draws only those containers' series (docs/guide.md's pictures)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.fixtures.requirements import need_binary

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "monitoring" / "render-dashboard.py"


def load_script():
    spec = importlib.util.spec_from_file_location("render_dashboard", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bucket(le: str, values: list[tuple[float, str]]) -> dict:
    return {"metric": {"le": le}, "values": [[t, v] for t, v in values]}


def drawn_counts(render, result, end, step):
    fig, ax = render.plt.subplots()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            render.draw_heatmap(ax, result, end, step)
            fig.canvas.draw()
        image = ax.get_images()[0]
        return image.get_array().tolist(), image.get_extent()
    finally:
        render.plt.close(fig)


def test_a_single_step_is_a_column_one_step_wide():
    render = load_script()
    result = [bucket("+Inf", [(100.0, "3")]), bucket("1024", [(100.0, "1")])]
    counts, extent = drawn_counts(render, result, end=101.0, step=1.0)
    assert counts == [[1.0], [2.0]]
    assert extent == pytest.approx((-1.5, -0.5, 0, 2))


def test_buckets_with_different_steps_share_one_grid():
    render = load_script()
    # The 1024 bucket has no sample at the first step: it counts 0 there, not a shifted column.
    result = [bucket("1024", [(11.0, "2")]), bucket("+Inf", [(10.0, "1"), (11.0, "4")])]
    counts, extent = drawn_counts(render, result, end=11.0, step=1.0)
    assert counts == [[0.0, 2.0], [1.0, 2.0]]
    assert extent == pytest.approx((-1.5, 0.5, 0, 2))


def test_every_series_selector_is_restricted_to_the_named_containers():
    render = load_script()
    only = 'k8s_container=~"mycontainer|web\\\\.1"'
    cases = {
        "sum by(le) (dns_requests_latency_nanoseconds_bucket)":
            f"sum by(le) (dns_requests_latency_nanoseconds_bucket{{{only}}})",
        "sum by(k8s_container) (rate(executed_processes_total[1m]))":
            f"sum by(k8s_container) (rate(executed_processes_total{{{only}}}[1m]))",
        'sum by(protocol, status) (sockets{status="CLOSE_WAIT", }) > 0':
            f'sum by(protocol, status) (sockets{{status="CLOSE_WAIT", {only}}}) > 0',
        "(x unless x offset 5m) or increase(y[5m]) > 1e8":
            f"(x{{{only}}} unless x{{{only}}} offset 5m) or increase(y{{{only}}}[5m]) > 1e8",
    }
    for expr, restricted in cases.items():
        assert render.only_containers(expr, ["mycontainer", "web.1"]) == restricted


def test_restricted_dashboard_queries_are_valid_promql(tmp_path):
    """promtool parses the restricted expressions as Prometheus will (as rules, offline)."""
    promtool = need_binary("promtool")
    render = load_script()
    panels = json.loads(render.DASHBOARD.read_text())["panels"]
    exprs = [render.only_containers(t["expr"], ["mycontainer", "web.1"]) for p in panels for t in p["targets"]]
    rules = tmp_path / "rules.yml"
    rules.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": [
        {"record": f"panel:{i}", "expr": e} for i, e in enumerate(exprs)]}]}))
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert all("k8s_container=~" in e for e in exprs)


def test_a_container_name_that_is_not_one_is_refused_in_one_line():
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", "/nonexistent", "--container", 'x"} or up{'],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "not a container name" in done.stderr and "Traceback" not in done.stderr
