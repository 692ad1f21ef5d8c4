"""`ig prometheus --config @DIR --watch`: a mounted ConfigMap directory followed through the kubelet's swaps.

Each push is a real atomic-writer swap (tests/kubelet_volume.py). With inotify the poll interval is
a minute, so only the directory watch can bring a new config in within the wait; with --no-inotify
the poll (1 s) must catch every swap by itself.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.fixtures.waiting import wait_until
from tests.kubelet_volume import ConfigMapVolume

EVENTS = "  - {name: events, type: counter, category: trace, gadget: synth, labels: [comm]}\n"
LATENCY = "  - {name: latency_total, type: counter, category: trace, gadget: synth, field: latency, labels: [comm]}\n"
CONFIG_A = "metrics_name: pushed\nmetrics:\n" + EVENTS
CONFIG_B = "metrics_name: pushed\nmetrics:\n" + EVENTS + LATENCY
CONFIG_C = "metrics_name: pushed\nmetrics:\n" + LATENCY
INVALID = "metrics_name: pushed\nmetrics:\n  - {name: events, type: counter, category: trace, gadget: synth, labels: [comn]}\n"

WATCH_MODES = {
    "inotify": ("--watch-poll-interval", "60"),
    "poll-only": ("--no-inotify", "--watch-poll-interval", "1"),
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def config_info(ig) -> set[str]:
    return {dict(labels)["sha256"] for (name, labels) in ig.samples() if name == "ig_config_info"}


def in_force(ig, text: str) -> bool:
    return config_info(ig) == {sha(text)} and ig.value("ig_config_last_reload_successful") == 1


@pytest.mark.parametrize("mode", WATCH_MODES)
def test_configmap_pushes_follow_the_atomic_swap(run_ig, synth, tmp_path, mode):
    feed, _ = synth
    volume = ConfigMapVolume(tmp_path / "config")
    ig = run_ig(f"@{volume.root}", "--watch", "--host", *WATCH_MODES[mode])
    # no config yet: ig's own metrics only, and one line saying where it waits
    assert config_info(ig) == set()
    assert ig.value("ig_config_last_reload_successful") == 1
    assert ig.value("ig_gadget_running", gadget="synth") is None
    logged = "".join(ig.output().split())  # rich wraps log lines at the terminal width
    assert logged.count("waitingforone") == 1 and str(volume.root / "config.yaml") in logged

    volume.write({"config.yaml": CONFIG_A})
    assert wait_until(lambda: in_force(ig, CONFIG_A))
    feed.send({"comm": "cat", "latency": 5}, {"comm": "cat", "latency": 5})
    assert ig.wait_for("events_total", 2, comm="cat") == 2
    first_success = ig.value("ig_config_last_reload_success_timestamp_seconds")
    assert first_success > 0

    # B keeps `events` unchanged (its count stays) and adds a metric
    volume.write({"config.yaml": CONFIG_B})
    assert wait_until(lambda: in_force(ig, CONFIG_B))
    assert ig.value("events_total", comm="cat") == 2
    feed.send({"comm": "cat", "latency": 7})
    assert ig.wait_for("latency_total", 7, comm="cat") == 7
    assert ig.value("events_total", comm="cat") == 3
    assert ig.value("ig_config_last_reload_success_timestamp_seconds") >= first_success

    # an invalid push keeps B in force and flips the self metric
    volume.write({"config.yaml": INVALID})
    assert wait_until(lambda: ig.value("ig_config_last_reload_successful") == 0)
    assert config_info(ig) == {sha(CONFIG_B)}
    feed.send({"comm": "cat", "latency": 1})
    assert ig.wait_for("events_total", 4, comm="cat") == 4
    assert 'unknowncolumn"comn"' in "".join(ig.output().split())

    # the next valid push recovers; `events` is gone, latency_total kept its sum
    volume.write({"config.yaml": CONFIG_C})
    assert wait_until(lambda: in_force(ig, CONFIG_C))
    assert ig.value("events_total", comm="cat") is None
    assert ig.value("latency_total", comm="cat") == 8

    # the ConfigMap emptied (kubectl gadget prometheus --delete): back to self metrics only
    volume.write({})
    assert wait_until(lambda: config_info(ig) == set() and ig.value("ig_gadget_running", gadget="synth") is None)
    assert ig.value("ig_config_last_reload_successful") == 1
    assert ig.value("ig_config_reloads_total", result="failure") == 1
    assert "Traceback" not in ig.output()


def test_plain_file_edited_by_hand(run_ig, synth, tmp_path):
    """`--config @file --watch` on a host: an editor's save (write a temp file, rename it over) reloads."""
    feed, _ = synth
    path = tmp_path / "mine.yaml"
    path.write_text(CONFIG_A)
    ig = run_ig(f"@{path}", "--watch", "--host", "--watch-poll-interval", "60")
    assert in_force(ig, CONFIG_A)
    feed.send({"comm": "sh", "latency": 2})
    assert ig.wait_for("events_total", 1, comm="sh") == 1
    tmp = tmp_path / ".mine.yaml.swp"
    tmp.write_text(CONFIG_B)
    os.rename(tmp, path)
    assert wait_until(lambda: in_force(ig, CONFIG_B))
    assert ig.value("events_total", comm="sh") == 1


def test_invalid_config_at_start_keeps_the_agent_up(run_ig, synth, tmp_path):
    volume = ConfigMapVolume(tmp_path / "config")
    volume.write({"config.yaml": INVALID})
    ig = run_ig(f"@{volume.root}", "--watch", "--host", "--watch-poll-interval", "60")
    assert ig.value("ig_config_last_reload_successful") == 0
    assert config_info(ig) == set()
    volume.write({"config.yaml": CONFIG_A})
    assert wait_until(lambda: in_force(ig, CONFIG_A))


def test_watch_needs_a_file(tmp_path):
    import subprocess

    from tests.fixtures.igrun import IG

    result = subprocess.run([IG, "prometheus", "--watch", "--config", CONFIG_A], capture_output=True, text=True,
                            env={**os.environ, "NO_COLOR": "1", "IG_TEST_GADGETS": "1"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--watch needs --config @FILE" in result.stderr


def test_check_reads_a_config_directory(tmp_path):
    import subprocess

    from tests.fixtures.igrun import IG

    volume = ConfigMapVolume(tmp_path / "config")
    volume.write({"config.yaml": CONFIG_B})
    env = {**os.environ, "NO_COLOR": "1", "IG_TEST_GADGETS": "1", "COLUMNS": "500"}
    result = subprocess.run([IG, "prometheus", "--check", "--config", f"@{volume.root}"], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and f"{volume.root / 'config.yaml'}: OK, 2 metric(s)" in result.stdout
