"""One bad gadget cannot take down the others (docs/config.md, "When a gadget misbehaves"), through a
real `ig prometheus`.

The `misbehaving` gadgets (tests/plugins/misbehaving, installed with pip like a third-party plugin)
hand the core what each test asks for; the `synth` gadgets beside them must keep serving exact
values, every scrape must stay HTTP 200 and promtool-clean, the self metrics must count the cause
and the log must name the gadget.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid

import pytest

from tests.fixtures.igrun import IG, free_port, log_lines
from tests.fixtures.misbehaving import SNAPSHOT, TRACE
from tests.fixtures.requirements import missing
from tests.fixtures.waiting import wait_until

CONFIG = """
metrics_name: isolation
metrics:
  - name: good_events
    type: counter
    category: trace
    gadget: synth
    labels: [comm]
  - name: good_sizes
    type: gauge
    category: snapshot
    gadget: synth
    field: size
    labels: [comm]
  - name: bad_events
    type: counter
    category: trace
    gadget: misbehaving
    labels: [uid]
  - name: bad_ratio
    type: counter
    category: trace
    gadget: misbehaving
    field: ratio
  - name: bad_sizes
    type: gauge
    category: snapshot
    gadget: misbehaving
    field: size
    selector: ["size:>1"]
    labels: [comm]
"""

def promtool_problems(text: str) -> list[str]:
    promtool = shutil.which("promtool") or missing("promtool (Debian's prometheus package) is not installed")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode in (0, 3), result.stdout + result.stderr  # 3: lint findings only
    return (result.stdout + result.stderr).strip().splitlines()


def feed_good(synth_pair) -> None:
    """The good gadgets' inputs: 2 cat events, and a snapshot of sh rows of size 5 and 7."""
    feed, snapshot = synth_pair
    snapshot.write_text(json.dumps([{"comm": "sh", "size": 5}, {"comm": "sh", "size": 7}]))
    feed.send({"comm": "cat"}, {"comm": "cat"})


def assert_good_gadgets_exact(ig, synth_pair, expected_events: int = 2) -> None:
    """The synth gadgets' metrics are exact, the scrape is HTTP 200 (else ig.text() raises) and
    promtool finds nothing; then one more event is counted exactly (the good gadget still runs)."""
    feed, _ = synth_pair
    assert ig.wait_for("good_events_total", expected_events, comm="cat") == expected_events
    assert ig.value("good_sizes", comm="sh") == 12
    assert promtool_problems(ig.text()) == []
    feed.send({"comm": "cat"})
    assert ig.wait_for("good_events_total", expected_events + 1, comm="cat") == expected_events + 1
    assert ig.value("ig_gadget_running", category="trace", gadget="synth") == 1


# --- snapshot rows that break the schema ----------------------------------------------------------


@pytest.mark.parametrize("row, column, reason", [
    ({"comm": "b", "cgroup_id": 0}, "size", "missing_column"),            # a column used by the field
    ({"comm": "b", "size": "big", "cgroup_id": 0}, "size", "wrong_type"),  # where `size:>1` compares
])
def test_bad_snapshot_row_is_dropped_and_the_scrape_still_answers(run_ig, synth, bad, row, column, reason):
    feed_good(synth)
    bad.snapshot([{"comm": "a", "size": 3, "cgroup_id": 0}, row])
    ig = run_ig(CONFIG, "--host")
    assert_good_gadgets_exact(ig, synth)
    samples = ig.samples()  # one scrape: its snapshot and its counts together
    assert samples[("bad_sizes", frozenset({("comm", "a")}))] == 3
    assert not [k for k in samples if k[0] == "bad_sizes" and ("comm", "b") in k[1]]
    taken = samples[("ig_snapshots_total", frozenset(SNAPSHOT.items()))]
    dropped = samples[("ig_bad_rows_total", frozenset({**SNAPSHOT, "column": column, "reason": reason}.items()))]
    assert taken >= 1 and dropped == taken  # the bad row of every snapshot taken, nothing else
    assert samples[("ig_snapshot_errors_total", frozenset({**SNAPSHOT, "reason": "exception"}.items()))] == 0
    assert log_lines(ig, f"gadget snapshot misbehaving: dropped a bad row: column '{column}'")
    assert "Traceback" not in ig.output()


def test_snapshot_that_raises_is_counted_and_the_others_serve(run_ig, synth, bad):
    feed_good(synth)
    bad.env("IG_MISBEHAVING_SNAPSHOT_RAISE", "1")
    ig = run_ig(CONFIG, "--host")
    assert_good_gadgets_exact(ig, synth)
    assert ig.value("ig_snapshot_errors_total", reason="exception", **SNAPSHOT) >= 1
    assert ig.value("bad_sizes") is None
    assert len(log_lines(ig, "snapshot of gadget snapshot misbehaving failed: RuntimeError")) == 1  # once a minute
    assert "Traceback" not in ig.output()


# --- a snapshot that hangs ------------------------------------------------------------------------


def test_hanging_snapshot_costs_one_time_limit_and_prometheus_keeps_scraping(run_ig, synth, bad, tmp_path,
                                                                              prometheus_server):
    feed_good(synth)
    bad.snapshot([{"comm": "a", "size": 3, "cgroup_id": 0}])
    bad.env("IG_MISBEHAVING_SNAPSHOT_SLEEP", "30")
    ig = run_ig(CONFIG, "--host", "--snapshot-timeout", "1")
    start = time.monotonic()
    assert_good_gadgets_exact(ig, synth)
    # the snapshot still hangs: later scrapes do not wait for it again
    assert time.monotonic() - start < 10
    assert ig.value("bad_sizes") is None
    assert ig.value("ig_snapshot_errors_total", reason="timeout", **SNAPSHOT) == 1  # one hung snapshot
    assert ig.value("ig_snapshots_total", **SNAPSHOT) == 0
    assert len(log_lines(ig, "snapshot of gadget snapshot misbehaving did not finish within --snapshot-timeout 1s")) == 1

    # Prometheus itself, with a scrape timeout of 2 s, keeps getting every other metric
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n  - job_name: ig\n"
                      f"    static_configs:\n      - targets: [\"{ig.address}\"]\n")
    prom = prometheus_server(config)
    result = prom.wait_for('good_events_total{comm="cat"}', lambda r: bool(r) and r[0]["value"][1] == "3")
    assert result and result[0]["value"][1] == "3"
    ups = prom.wait_for("count_over_time(up[20s])", lambda r: bool(r) and int(r[0]["value"][1]) >= 3)
    assert int(ups[0]["value"][1]) >= 3
    assert prom.query("min_over_time(up[20s])")[0]["value"][1] == "1"  # no scrape failed


# --- trace rows that break the schema -------------------------------------------------------------


GOOD = {"comm": "ok", "pid": 1, "uid": 1000, "ratio": 0.5, "cgroup_id": 0}


def test_bad_trace_rows_are_dropped_counted_and_logged(run_ig, synth, bad):
    feed_good(synth)
    ig = run_ig(CONFIG, "--host")
    bad.send([{**GOOD, "pid": "x" * 5000}])  # first bad row: its value is cut in the log
    wait_until(lambda: ig.value("ig_bad_rows_total", column="pid", reason="wrong_type", **TRACE) == 1,
               what="the first bad row counted")
    bad.send([
        GOOD,
        {k: v for k, v in GOOD.items() if k != "ratio"},  # missing column (a counter's field)
        {**GOOD, "pid": "two"},                            # a string in an int column
        {**GOOD, "ratio": float("nan")},                   # NaN in a float column
        {**GOOD, "ratio": float("inf")},                   # inf in a float column
        {**GOOD, "uid": -1},                               # negative in a uint column
        {**GOOD, "uid": "root"},                           # a name where the uid goes
        [1, 2, 3],                                         # not a row at all
    ])
    bad.send([{**GOOD, "ratio": 0.25}])
    assert ig.wait_for("bad_events_total", 2, uid="1000") == 2  # the two good rows, nothing else
    assert_good_gadgets_exact(ig, synth)
    s = ig.samples()
    assert ig.value("bad_ratio_total") == 0.75  # finite: NaN and inf never reached the counter
    assert not [k for k in s if k[0] == "bad_events_total" and ("uid", "1000") not in k[1]]
    counted = {(dict(ls)["column"], dict(ls)["reason"]): v for (n, ls), v in s.items()
               if n == "ig_bad_rows_total" and TRACE.items() <= ls and v}  # the others are at 0
    assert counted == {("pid", "wrong_type"): 2, ("ratio", "missing_column"): 1, ("ratio", "not_finite"): 2,
                       ("uid", "negative_uint"): 1, ("uid", "wrong_type"): 1, ("", "not_a_dict"): 1}
    assert ig.value("ig_events_dropped_total", reason="bad_row", **TRACE) == 8
    assert ig.value("ig_events_received_total", **TRACE) == 10
    assert ig.value("ig_gadget_running", **TRACE) == 1  # bad rows do not stop the gadget
    lines = log_lines(ig, "gadget trace misbehaving: dropped a bad row")
    assert len(lines) == 1  # rate-limited: once a minute per gadget
    assert "column 'pid' is 'xxxx" in lines[0] and "(5002 chars)" in lines[0] and len(lines[0].rstrip()) < 400
    assert "Traceback" not in ig.output()


def test_reader_thread_that_dies_shows_as_not_running(run_ig, synth, bad):
    feed_good(synth)
    ig = run_ig(CONFIG, "--host")
    bad.send([GOOD])
    assert ig.wait_for("bad_events_total", 1, uid="1000") == 1
    bad.send({"__die__": "reader crashed on purpose"})
    wait_until(lambda: ig.value("ig_gadget_running", **TRACE) == 0, what="ig_gadget_running 0")
    assert ig.value("ig_gadget_failed", reason="thread_died", **TRACE) == 1
    assert ig.value("bad_events_total", uid="1000") == 1  # what it counted before it died stays
    assert_good_gadgets_exact(ig, synth)
    lines = log_lines(ig, "gadget trace misbehaving: its thread 'misbehaving-reader' died: RuntimeError: reader crashed on purpose")
    assert len(lines) == 1
    assert "Traceback" not in ig.output()


# --- start() raises -------------------------------------------------------------------------------


@pytest.mark.parametrize("start, error", [("raise", "RuntimeError: start failure requested"),
                                          ("exit", "SystemExit: 3")])   # a BaseException is the gadget's failure too
def test_gadget_whose_start_raises_is_reported_and_the_others_run(run_ig, synth, bad, start, error):
    feed_good(synth)
    bad.env("IG_MISBEHAVING_START", start)
    ig = run_ig(CONFIG, "--host")
    assert_good_gadgets_exact(ig, synth)
    assert ig.value("ig_gadget_running", **TRACE) == 0
    assert ig.value("ig_gadget_failed", reason="start_failed", **TRACE) == 1
    assert ig.value("ig_gadget_running", **SNAPSHOT) == 1
    assert bad.stop_mark.read_text() == "stopped\n"  # stop() follows the failed start(), once
    lines = log_lines(ig, f"gadget trace misbehaving failed to start: {error}")
    assert len(lines) == 1
    assert "Traceback" not in ig.output()


def run_ig_to_exit(config: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [IG, "prometheus", "--metrics-listen-address", f"127.0.0.1:{free_port()}", "--config", config, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "NO_COLOR": "1"})


def one_error_line(result: subprocess.CompletedProcess) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    return errors[0]


def test_strict_exits_with_one_line_when_a_gadget_fails_to_start(synth, bad):
    bad.env("IG_MISBEHAVING_START", "raise")
    result = run_ig_to_exit(CONFIG, "--host", "--strict")
    assert result.returncode == 1
    line = one_error_line(result)
    assert "gadget trace misbehaving failed to start: RuntimeError: start failure requested" in line
    assert "--strict is set" in line
    assert bad.stop_mark.read_text() == "stopped\n"


def test_exits_with_one_line_when_no_gadget_can_start(synth, bad):
    bad.env("IG_MISBEHAVING_START", "raise")
    only_bad = CONFIG[:CONFIG.index("  - name: good_events")] + CONFIG[CONFIG.index("  - name: bad_events"):CONFIG.index("  - name: bad_sizes")]
    result = run_ig_to_exit(only_bad, "--host")
    assert result.returncode == 1
    assert "no gadget of the config could start" in one_error_line(result)


def test_strict_exits_with_one_line_when_a_thread_dies(run_ig, synth, bad):
    ig = run_ig(CONFIG, "--host", "--strict")
    bad.send({"__die__": "reader crashed on purpose"})
    ig.proc.wait(timeout=30)
    assert ig.proc.returncode == 1
    errors = [line for line in ig.output().splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "gadget trace misbehaving stopped running" in errors[0]
    assert "Traceback" not in ig.output()


# --- a reload that moves a metric from one gadget to another ------------------------------------


MOVED_FROM = """
metrics_name: moves
metrics:
  - name: slow_to_stop
    type: gauge
    category: snapshot
    gadget: misbehaving
  - name: moved
    type: counter
    category: trace
    gadget: misbehaving
  - name: steady
    type: counter
    category: trace
    gadget: synth
"""
MOVED_TO = """
metrics_name: moves
metrics:
  - name: steady
    type: counter
    category: trace
    gadget: synth
  - name: moved
    type: counter
    category: trace
    gadget: synth
"""

_TYPE_LINE = re.compile(r"^# TYPE (\S+) ", re.M)


def test_reload_moving_a_metric_never_shows_a_family_twice(run_ig, synth, bad, tmp_path):
    """Both misbehaving gadgets take 1.5 s to stop: before the swap was one assignment, the kept
    gadget showed the moved metric while the removed ones, stopped one after the other, still did."""
    bad.env("IG_MISBEHAVING_STOP_SLEEP", "1.5")
    path = tmp_path / "moves.yaml"
    path.write_text(MOVED_FROM)
    ig = run_ig(f"@{path}", "--host")
    scrapes, twice, stop = [], [], threading.Event()

    def scrape_loop() -> None:
        while not stop.is_set():
            text = ig.text()
            names = _TYPE_LINE.findall(text)
            scrapes.append("moved_total" in names)
            twice.extend({n for n in names if names.count(n) > 1})

    scraper = threading.Thread(target=scrape_loop)
    scraper.start()
    try:
        for n, config in enumerate((MOVED_TO, MOVED_FROM, MOVED_TO), start=1):
            path.write_text(config)
            ig.proc.send_signal(signal.SIGHUP)
            # counted once reload() returned, after the removed gadgets' slow stop(); scrapes go on meanwhile
            wait_until(lambda: ig.value("ig_config_reloads_total", result="success") == n, what=f"reload {n}")
    finally:
        stop.set()
        scraper.join()
    assert twice == []
    assert len(scrapes) > 20 and all(scrapes)  # a tight loop, and `moved` never went missing either
    assert ig.value("ig_gadget_running", category="trace", gadget="synth") == 1
    assert ig.value("ig_gadget_running", **TRACE) is None  # the removed gadget is gone from the exposition


# --- `ig trace`: the same gadget lifecycle ---------------------------------------------------------


def run_ig_trace(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([IG, "trace", "misbehaving", "--host", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "NO_COLOR": "1"})


def test_ig_trace_stops_the_gadget_once_and_reports_a_failed_start_in_one_line(synth, bad):
    bad.send([GOOD])
    result = run_ig_trace("--timeout", "2", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["uid"] for line in result.stdout.splitlines()] == [1000]
    assert bad.stop_mark.read_text() == "stopped\n"

    bad.stop_mark.unlink()
    bad.env("IG_MISBEHAVING_START", "raise")
    result = run_ig_trace("--timeout", "2")
    assert result.returncode == 1
    assert "gadget trace misbehaving failed to start: RuntimeError: start failure requested" in one_error_line(result)
    assert bad.stop_mark.read_text() == "stopped\n"  # stop() followed the failed start()


def test_ig_snapshot_reports_a_raising_snapshot_in_one_line(synth, bad):
    bad.snapshot([{"comm": "a", "size": 3, "cgroup_id": 0}])   # a whole row: ig snapshot checks rows too
    result = subprocess.run([IG, "snapshot", "misbehaving", "--host", "--output", "json"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["size"] for line in result.stdout.splitlines()] == [3]

    bad.env("IG_MISBEHAVING_SNAPSHOT_RAISE", "1")
    result = subprocess.run([IG, "snapshot", "misbehaving", "--host"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 1
    assert "gadget snapshot misbehaving failed: RuntimeError" in one_error_line(result)


def test_kernel_column_that_does_not_compile_falls_back_to_user_space(require_bpf, run_ig, bad, tmp_path):
    """A plugin's KernelField that the compiler refuses: the gadget starts again with its metrics in
    user space, says so once, and counts exactly."""
    program = tmp_path / ("igm" + uuid.uuid4().hex[:8])
    shutil.copy("/bin/true", program)
    config = f"""metrics_name: fallback
metrics:
  - name: by_comm
    type: counter
    category: trace
    gadget: misbehaving_kernel
    selector: ["comm:{program.name}"]
    labels: [broken]
"""
    ig = run_ig(config, "--host")
    assert ig.value("ig_gadget_running", category="trace", gadget="misbehaving_kernel") == 1
    assert ig.value("ig_metric_aggregation", metric="by_comm", path="user") == 1
    for _ in range(4):
        subprocess.run([str(program)], check=True)
    assert ig.wait_for("by_comm_total", 4, broken="0") == 4
    lines = log_lines(ig, "gadget trace misbehaving_kernel: its program did not load with the metrics computed in the kernel")
    assert len(lines) == 1, ig.output()
    assert "no_such_field" in ig.output()   # the compiler's own words, printed by bcc
    assert "Traceback" not in ig.output()


# --- ig trace runs the gadget as ig prometheus does ---------------------------------------------


def _bad_row_records(stderr: str) -> list[dict]:
    """The row check's warnings among JSON log records (`--log-format json`), without their time."""
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [{k: v for k, v in r.items() if k != "time"} for r in records if "dropped a bad row" in r.get("message", "")]


def test_ig_trace_checks_rows_as_ig_prometheus_does(run_ig, synth, bad, tmp_path):
    """The same batch through both commands: the bad row is dropped, the good one goes on, and the
    warning is the same record (ig prometheus counts it in ig_bad_rows_total, which the line names)."""
    batch = [GOOD, {**GOOD, "pid": "two"}]
    bad.send(batch)
    out, err = tmp_path / "trace.out", tmp_path / "trace.err"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        trace = subprocess.Popen([IG, "trace", "misbehaving", "--host", "-o", "json", "--log-format", "json"],
                                 stdout=stdout, stderr=stderr, env={**os.environ, "NO_COLOR": "1"})
    try:
        wait_until(lambda: out.read_text().strip() and _bad_row_records(err.read_text()), what="ig trace's rows")
    finally:
        trace.send_signal(signal.SIGINT)
        assert trace.wait(timeout=30) == 0, err.read_text()
    assert [json.loads(line)["pid"] for line in out.read_text().splitlines()] == [1]
    from_trace = _bad_row_records(err.read_text())

    ig = run_ig(CONFIG, "--host", "--log-format", "json")
    wait_until(lambda: ig.value("ig_bad_rows_total", column="pid", reason="wrong_type", **TRACE) == 1,
               what="the bad row counted")
    assert ig.value("bad_events_total", uid="1000") == 1
    assert from_trace == _bad_row_records(ig.output()) and len(from_trace) == 1, (from_trace, ig.output())
    assert from_trace[0]["gadget"] == "trace misbehaving" and from_trace[0]["reason"] == "wrong_type"


def test_ig_trace_ends_in_one_line_when_the_gadgets_thread_dies(synth, bad):
    """As ig prometheus marks the gadget failed (`thread_died`), ig trace ends with its words."""
    bad.send([GOOD])
    bad.send({"__die__": "reader crashed on purpose"})
    result = run_ig_trace("--timeout", "50", "--output", "json")
    assert result.returncode == 1
    assert one_error_line(result) == ("Error: gadget trace misbehaving: its thread 'misbehaving-reader' died: "
                                      "RuntimeError: reader crashed on purpose")
    assert [json.loads(line)["uid"] for line in result.stdout.splitlines()] == [1000]
    assert bad.stop_mark.read_text() == "stopped\n"
