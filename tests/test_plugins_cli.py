"""Plugin discovery through entry points, as `ig list-gadgets` shows it."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import sys
from pathlib import Path

IG = str(Path(sys.executable).with_name("ig"))


def ig(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([IG, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **env})


def test_list_gadgets_shows_installed_plugin_with_distribution():
    result = ig("list-gadgets", IG_TEST_GADGETS="1")
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if " synth " in l and "trace" in l)
    assert "ig-gadget-synthetic" in line and "0.1.0" in line


def test_broken_plugin_is_reported_and_others_still_load():
    result = ig("list-gadgets", IG_TEST_GADGETS="1", IG_SYNTHETIC_BREAK="1")
    assert result.returncode == 0, result.stderr
    assert "synthetic-broken" in result.stdout
    assert "synthetic breakage requested" in result.stdout
    assert any(" synth " in l and "trace" in l for l in result.stdout.splitlines())


# What a plugin's own code raises, BaseException included, makes that plugin broken and no more.
FAULTS = {"exit": "SystemExit: 3", "interrupt": "KeyboardInterrupt: raised by the plugin",
          "generator": "GeneratorExit: raised by the plugin"}


@pytest.mark.parametrize("where", ["IG_SYNTHETIC_BREAK", "IG_SYNTHETIC_BREAK_HOOK"])  # its import, its hook
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_base_exception_from_a_plugin_lists_it_as_broken(fault, where):
    result = ig("list-gadgets", IG_TEST_GADGETS="1", **{where: fault})
    assert result.returncode == 0, result.stdout + result.stderr
    broken = next(l for l in result.stdout.splitlines() if "synthetic-broken" in l)
    assert "broken" in broken and FAULTS[fault] in broken
    assert any(" synth " in l and "trace" in l for l in result.stdout.splitlines())


def test_ctrl_c_while_a_plugin_imports_interrupts_ig(tmp_path):
    """A real SIGINT is the user's, not the importing plugin's bug: ig ends instead of listing."""
    mark = tmp_path / "importing"
    proc = subprocess.Popen([IG, "list-gadgets"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "IG_TEST_GADGETS": "1", "IG_SYNTHETIC_SLOW_IMPORT": str(mark)})
    try:
        deadline = time.monotonic() + 60
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mark.exists(), proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode != 0, out
    assert "synthetic-broken" not in out and "Traceback" not in err, out + err


def test_ig_prometheus_runs_the_other_plugins_when_one_raises_system_exit():
    config = "metrics_name: t\nmetrics:\n  - {name: rows, type: counter, category: trace, gadget: synth}\n"
    result = ig("prometheus", "--check", "--config", config, IG_TEST_GADGETS="1", IG_SYNTHETIC_BREAK="exit")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK, 1 metric(s): rows" in result.stdout


def test_disable_plugins_by_distribution():
    result = ig("list-gadgets", IG_TEST_GADGETS="1", IG_DISABLE_PLUGINS="IG_Gadget.Synthetic")  # as pip compares
    assert result.returncode == 0, result.stderr
    assert " synth " not in result.stdout and "synthetic" not in result.stdout   # both of its entry points
    assert " exec " in result.stdout and result.stderr == ""


def test_an_entry_point_name_in_disable_plugins_disables_nothing_and_says_so_in_one_line():
    result = ig("list-gadgets", IG_TEST_GADGETS="1", IG_DISABLE_PLUGINS="synthetic")
    assert result.returncode == 0, result.stderr
    assert any(" synth " in l and "trace" in l for l in result.stdout.splitlines())
    assert result.stderr.count("\n") == 1
    assert "'synthetic' is an entry-point name, not a distribution" in result.stderr


def test_gadget_columns_and_kinds():
    result = ig("list-gadgets", "trace", "synth", IG_TEST_GADGETS="1")
    assert result.returncode == 0, result.stderr
    rows = {l.split("│")[1].strip(): l for l in result.stdout.splitlines() if l.count("│") >= 4}
    assert "int" in rows["pid"] and "uint" in rows["uid"] and "bool" in rows["ok"] and "float" in rows["ratio"]
    assert "command" in rows["comm"]  # alias shown
    assert "k8s.namespace" in rows
    # the pod's owner and labels (docs/config.md, Pod owners and labels), and the form of one label's column
    assert {"k8s.owner.kind", "k8s.owner.name", "k8s.podLabels"} <= rows.keys()
    assert "by key" in rows["k8s.podLabels.KEY"] and "k8s_podLabels_KEY" in rows["k8s.podLabels.KEY"]


def test_unknown_gadget_is_one_line_exit_2():
    result = ig("list-gadgets", "trace", "nope", IG_TEST_GADGETS="1")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no trace gadget named 'nope'" in result.stderr and "synth" in result.stderr


def test_trace_shows_filtered_rows_as_json(tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"comm": "cat", "pid": 7}\n{"comm": "sh", "pid": 8}\n')
    result = ig("trace", "synth", "--host", "--timeout", "1.5", "-o", "json", "--filter", "comm:cat",
                IG_TEST_GADGETS="1", IG_SYNTHETIC_FEED=str(feed))
    assert result.returncode == 0, result.stderr
    rows = [__import__("json").loads(l) for l in result.stdout.splitlines() if l.startswith("{")]
    assert [(r["comm"], r["pid"]) for r in rows] == [("cat", 7)]
    assert rows[0]["k8s.container"] == ""


def test_snapshot_table_and_bad_filter(tmp_path):
    snap = tmp_path / "snap.json"
    snap.write_text('[{"comm": "sh", "pid": 3, "size": 9}]')
    env = {"IG_TEST_GADGETS": "1", "IG_SYNTHETIC_SNAPSHOT": str(snap)}
    result = ig("snapshot", "synth", "--host", "--columns", "pid,comm,size", **env)
    assert result.returncode == 0, result.stderr
    assert "SIZE" in result.stdout and " 9 " in result.stdout
    bad = ig("snapshot", "synth", "--host", "--filter", "size:big", **env)
    assert bad.returncode == 2 and "is not a number" in bad.stderr
