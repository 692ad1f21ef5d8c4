"""ig's logs as a machine reads them (docs/config.md, Logs): one event, one line, in every format.

A real `ig prometheus`, its output piped to a file as journald or the kubelet would take it, lives
through a gadget that fails to start, a gadget whose thread dies, a bad row, a metric at
--max-series, a reload of an invalid config and a SIGTERM. Each failure's text carries control
characters (as a hostile plugin or config could); every line ig wrote must still parse on its own:
`json.loads` for json, a logfmt parser for logfmt, and for text a level (or `Error:`) followed by
the whole message, neither wrapped nor padded.

And the failures that end ig are one line each: without root (checked before anything else) and a
config none of whose gadgets can start.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import pytest

from tests.fixtures.igrun import IG, free_port, start_command
from tests.fixtures.nobody import as_nobody
from tests.fixtures.waiting import wait_until

# Text a plugin hands ig: a newline that would forge a log line of its own, an escape sequence, a
# C1 line break and a Unicode line separator (str.splitlines and some log readers split there).
HOSTILE = "boom\nERROR forged line\x1b[31m\x85red\u2028end"

CONFIG = """
metrics_name: logs
metrics:
  - name: good_events
    type: counter
    category: trace
    gadget: synth
    labels: [comm]
  - name: bad_events
    type: counter
    category: trace
    gadget: misbehaving
    labels: [comm]
  - name: bad_sizes
    type: gauge
    category: snapshot
    gadget: misbehaving
"""

# A label no synth column has: the reload is refused, naming the metric.
INVALID = CONFIG.replace("labels: [comm]\n  - name: bad_events", "labels: [comn]\n  - name: bad_events")

LEVELS = ("debug", "info", "warning", "error", "critical")
NOT_ROOT = "ig needs root to load eBPF programs (run it as root)"


@pytest.fixture
def gadgets(tmp_path, monkeypatch, synth):
    """The synth gadgets and the misbehaving ones (tests/plugins/misbehaving): the snapshot one
    fails to start with HOSTILE as its error; the trace one reads batches from a directory."""
    batches = tmp_path / "batches"
    batches.mkdir()
    monkeypatch.setenv("IG_MISBEHAVING_BATCHES", str(batches))
    monkeypatch.setenv("IG_MISBEHAVING_SNAPSHOT", str(tmp_path / "misbehaving-snapshot.json"))
    monkeypatch.setenv("IG_MISBEHAVING_SNAPSHOT_START_ERROR", HOSTILE)
    monkeypatch.delenv("COLUMNS", raising=False)   # ig must not need it to keep a line whole
    monkeypatch.delenv("LINES", raising=False)
    sent = iter(range(1, 1000))

    def send(batch) -> None:
        n = next(sent)
        (batches / f"{n:06d}.tmp").write_text(json.dumps(batch))
        (batches / f"{n:06d}.tmp").rename(batches / f"{n:06d}.json")

    return synth[0], send


# --- parsers: what a log pipeline does with each line ----------------------------------------------

_LOGFMT_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^\s"=]*)(?: |$)')
_LOGFMT_ESCAPE = re.compile(r'\\(x[0-9a-f]{2}|u[0-9a-f]{4}|.)')
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def parse_logfmt(line: str) -> dict[str, str]:
    """key=value pairs separated by one space; a quoted value's escapes decoded. Raises on
    anything else, so a line cut in two does not parse."""
    pairs, end = {}, 0
    for match in _LOGFMT_PAIR.finditer(line):
        assert match.start() == end, f"not logfmt at {end}: {line!r}"
        key, value = match.groups()
        if value.startswith('"'):
            value = _LOGFMT_ESCAPE.sub(lambda m: _SIMPLE_ESCAPES.get(m.group(1)) or chr(int(m.group(1)[1:], 16)),
                                       value[1:-1])
        pairs[key] = value
        end = match.end()
    assert end == len(line) and pairs, f"not logfmt: {line!r}"
    return pairs


def parse_json(line: str) -> dict:
    record = json.loads(line)
    assert isinstance(record, dict), line
    return record


def one_line_each(raw: bytes) -> list[str]:
    """ig's output split where a reader splits it; each line must be one line for every reader
    (no C1 or Unicode line break left in it)."""
    lines = raw.decode().split("\n")
    assert lines[-1] == "", "the output does not end with a newline"
    for line in lines[:-1]:
        assert len(line.splitlines()) <= 1, f"a line break inside a line: {line!r}"
    return lines[:-1]


# --- the run --------------------------------------------------------------------------------------


def run_through_failures(tmp_path, gadgets, log_format: str) -> tuple[bytes, int]:
    """Start ig, make every kind of failure happen, stop it with SIGTERM; (its output, exit code)."""
    feed, send = gadgets
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    address = f"127.0.0.1:{free_port()}"
    cmd = [IG, "prometheus", "--metrics-listen-address", address, "--config", f"@{path}", "--host",
           "--max-series", "1"]
    if log_format != "default":
        cmd += ["--log-format", log_format]
    ig = start_command(cmd, address, "/metrics", tmp_path)
    try:
        feed.send({"comm": "cat"}, {"comm": "dog"})   # two label sets: good_events at --max-series 1
        send([{"comm": "x", "pid": f"1{HOSTILE}", "uid": 0, "ratio": 1.0, "cgroup_id": 0}])   # a bad row
        wait_until(lambda: ig.value("ig_bad_rows_total", gadget="misbehaving", column="pid", reason="wrong_type"),
                   "the bad row")
        send({"__die__": HOSTILE})
        wait_until(lambda: ig.value("ig_gadget_failed", gadget="misbehaving", category="trace", reason="thread_died"),
                   "the thread's death")
        path.write_text(INVALID)
        ig.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: ig.value("ig_config_reloads_total", result="failure"), "the failed reload")
        wait_until(lambda: "reload failed" in ig.output(), "the failed reload's line")
        wait_until(lambda: "max-series" in ig.output(), "the --max-series warning")
    finally:
        code = ig.stop(signal.SIGTERM)
    return ig.log.read_bytes(), code


# What each failure's line must say, as (field, value) pairs a structured line carries.
EXPECTED = {
    "start": {"level": "error", "gadget": "snapshot misbehaving", "reason": "start_failed"},
    "death": {"level": "error", "gadget": "trace misbehaving", "reason": "thread_died"},
    "bad row": {"level": "warning", "gadget": "trace misbehaving", "reason": "wrong_type"},
    "cap": {"level": "warning", "metric": "good_events", "reason": "max_series"},
    "reload": {"level": "error", "metric": "good_events", "reason": "reload_failed"},
}
MESSAGES = {   # how each failure's message begins, and a phrase from its end (a cut line loses it)
    "start": ("gadget snapshot misbehaving failed to start: RuntimeError: boom", "the other gadgets keep running"),
    "death": ("gadget trace misbehaving: its thread", "the other gadgets keep running"),
    "bad row": ("gadget trace misbehaving: dropped a bad row", "logged at most once a minute"),
    "cap": ("metric good_events reached --max-series 1 label sets", "ig_series_expired_total"),
    "reload": ("reload failed, the previous config keeps running", "comn"),
}


def find(records: list[dict], what: str) -> dict:
    start, end = MESSAGES[what]
    found = [r for r in records if r["message"].startswith(start)]
    assert len(found) == 1, (what, records)
    assert end in found[0]["message"], (what, found[0])
    return found[0]


@pytest.mark.parametrize("log_format, parse", [("json", parse_json), ("logfmt", parse_logfmt)])
def test_every_line_of_a_structured_log_parses(tmp_path, gadgets, log_format, parse):
    raw, code = run_through_failures(tmp_path, gadgets, log_format)
    assert code == 0
    records = [parse(line) for line in one_line_each(raw)]   # every line, stdout's included
    for record in records:
        assert list(record)[:4] == ["time", "level", "logger", "message"], record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"]), record
        assert record["level"] in LEVELS and record["logger"].startswith(("igcore", "py.warnings")), record
    for what, fields in EXPECTED.items():
        record = find(records, what)
        assert {k: record.get(k) for k in fields} == fields, (what, record)
    # the hostile text comes back whole from the line it was escaped into
    assert HOSTILE in find(records, "start")["message"]
    assert HOSTILE in find(records, "death")["message"]
    messages = [r["message"] for r in records]
    running = messages.index("Running. Press Ctrl + C to finish")
    assert messages[running + 1].startswith("Publishing metrics") and messages[-1] == "Stopped."


@pytest.mark.parametrize("log_format", ["default", "text"])
def test_text_log_is_one_unpadded_line_per_event_when_piped(tmp_path, gadgets, log_format):
    raw, code = run_through_failures(tmp_path, gadgets, log_format)
    assert code == 0
    lines = one_line_each(raw)
    status = ("Running. Press Ctrl + C to finish", "Publishing metrics... (", "Stopped.")
    records = []
    for line in lines:
        assert line == line.rstrip(), f"padded: {line!r}"
        if line.startswith(status):
            continue
        match = re.fullmatch(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) +(\S.*)|Error: (\S.*)", line)
        assert match, f"neither a log line nor a status line (a wrapped line's rest?): {line!r}"
        level, message = ("error", match[3]) if match[3] else (match[1].lower(), match[2])
        records.append({"level": level, "message": message})
    for what, fields in EXPECTED.items():
        assert find(records, what)["level"] == fields["level"], what
    escaped = HOSTILE.encode("unicode_escape").decode()   # boom\nERROR forged line\x1b[31m\x85red\u2028end
    assert escaped in find(records, "start")["message"]
    assert lines[-1] == "Stopped."


# --- one line per failure -------------------------------------------------------------------------


def run_to_exit(cmd: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "NO_COLOR": "1"},
                          **kw)


def ig_as_nobody(*args: str) -> list[str]:
    return [*as_nobody(), IG, *args]


@pytest.mark.parametrize("command", [
    ("prometheus", "--metrics-listen-address", f"127.0.0.1:{free_port()}"),
    ("trace", "exec", "--timeout", "5"),
], ids=["prometheus", "trace"])
def test_without_root_ig_says_so_in_one_line(command):
    result = run_to_exit(ig_as_nobody(*command), timeout=60, cwd="/")   # before root was checked first,
    # `ig prometheus` kept running with the snapshot gadget of the built-in config
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"Error: {NOT_ROOT}"], result.stderr


def test_without_root_a_json_log_has_one_record():
    result = run_to_exit(ig_as_nobody("prometheus", "--log-format", "json"), timeout=60, cwd="/")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stdout == "", result.stderr
    record = json.loads(lines[0])
    assert (record["level"], record["message"], record["reason"]) == ("error", NOT_ROOT, "not_root")


ONLY_BAD = """
metrics_name: failing
metrics:
  - name: bad_events
    type: counter
    category: trace
    gadget: misbehaving
  - name: bad_sizes
    type: gauge
    category: snapshot
    gadget: misbehaving
"""


@pytest.mark.parametrize("config, args, why", [
    (ONLY_BAD, (), "no gadget of the config could start (1 more failed: "),
    (CONFIG, ("--strict",), "--strict is set"),
], ids=["every-gadget-fails", "strict"])
def test_a_config_refused_for_its_gadgets_is_one_line(gadgets, monkeypatch, config, args, why):
    monkeypatch.setenv("IG_MISBEHAVING_START", "raise")
    result = run_to_exit([IG, "prometheus", "--metrics-listen-address", f"127.0.0.1:{free_port()}",
                          "--config", config, "--host", *args])
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: gadget ") and " failed to start: " in lines[0] and why in lines[0], lines[0]
    assert "keep running" not in lines[0]
