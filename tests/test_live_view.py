"""`ig trace`, `ig snapshot` and `ig list-gadgets` as a user sees them in a terminal of 80 columns
(docs/config.md, Watching rows live): the header and the waiting line at once, one row per line,
nothing cut that a user pastes into a config."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid

import pytest
from rich.cells import cell_len

from igcore.plugins import load_catalog

from .fixtures.igrun import IG
from .fixtures.terminal import Terminal, plain_env

CONTAINERS_ONLY = "waiting for events (containers only; --host adds host processes)"


@pytest.fixture
def terminal():
    started: list[Terminal] = []

    def start(*args: str, **kwargs) -> Terminal:
        started.append(Terminal([IG, *args], **kwargs))
        return started[-1]

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.stop()


def test_trace_exec_says_it_waits_and_keeps_each_row_on_one_line_of_80_columns(require_bpf, terminal, tmp_path):
    tag = f"igv{uuid.uuid4().hex[:8]}"   # the command's name: comm, and the first of the args
    program = tmp_path / tag
    shutil.copy("/bin/true", program)
    argv = [tag, "a" * 200, "two\nlines", "tab\there", "b" * 300]

    def run_one() -> None:
        subprocess.run(argv, executable=str(program), check=True)

    ig = terminal("trace", "exec", "--host")
    ig.wait_for("row of the test's exec", lambda lines: run_one() or any(tag in line for line in lines))
    for _ in range(5):
        run_one()
    ig.wait_for("six rows of the test's exec", lambda lines: sum(tag in line for line in lines) >= 6)
    lines = ig.stop()
    assert lines[0].split()[:3] == ["K8S.CONTAINER", "PID", "PPID"], lines[:3]   # the header, at once
    assert lines[1] == "waiting for events", lines[:3]                           # before any row
    too_wide = [line for line in lines if cell_len(line) > 80]
    assert not too_wide, too_wide[:10]
    rows = [line for line in lines if tag in line]
    for row in rows:   # the whole row on its line: pid, comm, then the args cut at the edge
        assert re.fullmatch(rf"\s+\d+\s+\d+\s+0\s+{tag}\s+{tag} a+…", row), row
    assert not any(line.startswith(("lines", "here", "bbb")) for line in lines)


def test_trace_says_at_once_that_it_shows_containers_only(terminal):
    """Before the gadget runs, and though no event ever comes: the header and what is watched."""
    ig = terminal("trace", "synth", IG_TEST_GADGETS="1")
    lines = ig.wait_for("waiting line", lambda ls: CONTAINERS_ONLY in ls, timeout=60)
    assert lines[0].split()[:2] == ["K8S.CONTAINER", "PID"] and lines[1] == CONTAINERS_ONLY, lines
    ig.stop()


def test_table_cuts_long_values_and_wide_shows_them_whole(tmp_path):
    comm = "c" * 60 + "-end"
    feed = tmp_path / "feed.jsonl"
    feed.write_text(f'{{"comm": "{comm}", "pid": 7}}\n')
    common = ["trace", "synth", "--host", "--timeout", "1.5", "--columns", "pid,comm,uid,latency,ratio,ok"]
    env = plain_env(IG_TEST_GADGETS="1", IG_SYNTHETIC_FEED=str(feed), COLUMNS="60")
    table = subprocess.run([IG, *common], capture_output=True, text=True, timeout=60, env=env)
    wide = subprocess.run([IG, *common, "-o", "wide"], capture_output=True, text=True, timeout=60, env=env)
    assert table.returncode == 0 and wide.returncode == 0, table.stderr + wide.stderr
    assert all(cell_len(line) <= 60 for line in table.stdout.splitlines()), table.stdout
    row = next(line for line in table.stdout.splitlines() if line.startswith("7 "))
    assert "ccc…" in row and "-end" not in row
    row = next(line for line in wide.stdout.splitlines() if line.startswith("7 "))
    assert comm in row and row.split()[-3:] == ["0", "0.0", "False"], row   # the columns after it stay
    assert "left out" not in wide.stderr


def test_a_value_cannot_break_a_line_or_drive_the_terminal(tmp_path):
    """A command's name or argument is the traced program's choice: a newline, a tab or an escape
    sequence in it shows as a space, in table and wide output."""
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"comm": "evil\\u001b]0;title\\u0007\\nsecond\\tline", "pid": 7}\n')
    for output in ("table", "wide"):
        result = subprocess.run([IG, "trace", "synth", "--host", "--timeout", "1.5", "-o", output], capture_output=True,
                                text=True, timeout=60, env=plain_env(IG_TEST_GADGETS="1", IG_SYNTHETIC_FEED=str(feed)))
        assert result.returncode == 0, result.stderr
        rows = [line for line in result.stdout.splitlines() if "evil" in line]
        assert len(rows) == 1 and "\x1b" not in result.stdout and "\x07" not in result.stdout, result.stdout
        assert "second line" in rows[0] or output == "table", rows


def test_a_column_that_does_not_fit_is_named(tmp_path):
    snap = tmp_path / "snap.json"
    snap.write_text('[{"comm": "sh", "pid": 3, "size": 9}]')
    result = subprocess.run([IG, "snapshot", "synth", "--host", "--columns", "comm,pid,size"], capture_output=True,
                            text=True, timeout=60,
                            env=plain_env(IG_TEST_GADGETS="1", IG_SYNTHETIC_SNAPSHOT=str(snap), COLUMNS="30"))
    assert result.returncode == 0, result.stderr
    assert all(cell_len(line) <= 30 for line in result.stdout.splitlines()), result.stdout
    assert "left out to fit 30 columns: size" in " ".join(result.stderr.split())   # wrapped at 30


DNS_COLUMNS = [c.name for c in load_catalog().get("trace", "dns").columns]


def assert_column_names_whole(lines: list[str], width: int) -> None:
    assert all(cell_len(line) <= width for line in lines), lines
    text = "\n".join(lines)
    for name in DNS_COLUMNS:
        assert re.search(rf"(^|[\s│]){re.escape(name)}([\s│]|$)", text, re.M), name
    assert "…" not in text


@pytest.mark.parametrize("width", [80, 50])
def test_list_gadgets_never_cuts_a_column_name_in_a_terminal(terminal, width):
    ig = terminal("list-gadgets", "trace", "dns", columns=width)
    ig.proc.wait(timeout=60)
    assert_column_names_whole(ig.stop(), width)


def test_list_gadgets_never_cuts_a_column_name_when_piped():
    result = subprocess.run([IG, "list-gadgets", "trace", "dns"], capture_output=True, text=True, timeout=60,
                            env=plain_env())
    assert result.returncode == 0, result.stderr
    assert_column_names_whole(result.stdout.splitlines(), 80)
    assert "runtime.containerImageName" in result.stdout


@pytest.mark.parametrize("fmt", ["json", "logfmt"])
def test_the_live_views_notes_are_records_in_a_structured_log_format(fmt):
    """With --log-format json or logfmt, every line ig trace writes on stderr is a record (the
    waiting line, the columns left out, the hint after the run): a log pipeline reads them all."""
    result = subprocess.run([IG, "trace", "synth", "--timeout", "1.5", "--log-format", fmt], capture_output=True,
                            text=True, timeout=60, env=plain_env(IG_TEST_GADGETS="1", COLUMNS="30"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any("waiting for events" in line for line in lines), lines
    for line in lines:
        if fmt == "json":
            assert json.loads(line)["logger"], line
        else:
            assert line.startswith("time=") and " level=" in line and " message=" in line, line
