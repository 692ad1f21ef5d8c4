"""Hostile configs through the CLI: `ig prometheus --check` answers each in one line, and a running
ig reloading it with SIGHUP keeps the old config, stays up and counts the failed reload."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.fixtures.igrun import check
from tests.fixtures.waiting import wait_until

GOOD = "metrics_name: t\nmetrics:\n  - {name: events, type: counter, category: trace, gadget: synth, labels: [comm]}\n"


def _write(text: str):
    return lambda path: path.write_text(text)


def _replace_with_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _replace_with_dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _metric(extra: str, type: str = "counter") -> str:
    return f"metrics_name: t\nmetrics:\n  - {{name: m, type: {type}, category: trace, gadget: synth{extra}}}\n"


# (id, how to make the config path hostile, phrase of the one-line error)
HOSTILE = [
    ("over 1 MiB", _write(GOOD + "#" * (1024 * 1024) + "\n"), "the config is 1.0 MiB; the limit is 1 MiB"),
    ("FIFO", _replace_with_fifo, "it is a FIFO, not a regular file"),
    ("/dev/zero", _replace_with_dev_zero, "it is a character device, not a regular file"),
    ("nesting 500", _write("metrics_name: t\nmetrics: " + "[" * 500 + "]" * 500 + "\n"),
     "metrics[0]: each metric must be a mapping"),
    ("nesting 5000", _write("metrics_name: t\nmetrics: " + "[" * 5000 + "]" * 5000 + "\n"), "nested too deeply"),
    ("exp2 min of millions", _write(_metric(", field: latency, bucket: {type: exp2, min: 3000000, max: 3000002}", "histogram")),
     "bucket bounds exceed the range of a float"),
    ("900 kB regex", _write(_metric(", selector: ['comm:~" + "a" * 900_000 + "']")), "pattern too large"),
    ("reserved name", _write(GOOD.replace("name: events", "name: ig_info")),
     'name "ig_info" is reserved'),
]


@pytest.mark.parametrize("make_hostile, phrase", [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_check_answers_hostile_configs_in_one_line(make_hostile, phrase, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(GOOD)
    make_hostile(path)
    result = check(f"@{path}")  # the 60 s timeout fails the test if a read blocks
    assert result.returncode == 2, (result.stdout, result.stderr[:2000])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[:2000]
    assert lines[0].startswith(f"Error: {path}: ") and phrase in lines[0] and len(lines[0]) < 1000, lines[0][:2000]


def _reload_errors(ig, expected: int) -> list[str]:
    lines = lambda: [l for l in ig.output().splitlines() if "reload failed" in l]
    wait_until(lambda: len(lines()) >= expected, f"{expected} 'reload failed' lines in ig's log")
    return lines()


def test_running_ig_survives_every_hostile_reload(run_ig, synth, tmp_path):
    feed, _ = synth
    path = tmp_path / "config.yaml"
    path.write_text(GOOD)
    ig = run_ig(f"@{path}", "--host")
    feed.send({"comm": "cat"}, {"comm": "cat"})
    assert ig.wait_value("events_total", 2, comm="cat") == 2

    for failures, (name, make_hostile, phrase) in enumerate(HOSTILE, start=1):
        make_hostile(path)
        ig.proc.send_signal(signal.SIGHUP)
        assert ig.wait_value("ig_config_reloads_total", failures, result="failure") == failures, name
        assert ig.proc.poll() is None, name
        errors = _reload_errors(ig, failures)  # counted before it is printed: wait for the line too
        assert len(errors) == failures and phrase in errors[-1] and len(errors[-1]) < 1000, (name, errors[-1][:2000])
        # the old config still counts
        feed.send({"comm": "cat"})
        assert ig.wait_value("events_total", 2 + failures, comm="cat") == 2 + failures, name
        path.unlink()
        path.write_text(GOOD)  # the next case starts from a regular file again

    path.write_text(GOOD.replace("labels: [comm]", "labels: []"))
    ig.proc.send_signal(signal.SIGHUP)
    assert ig.wait_value("ig_config_reloads_total", 1, result="success") == 1
    assert ig.value("ig_config_reloads_total", result="failure") == len(HOSTILE)
    assert ig.stop(signal.SIGTERM) == 0
    assert "Traceback" not in ig.output()
