"""trace open end to end: `ig trace open` and `ig prometheus` as users run them, containers included,
and the gadget's removal with pip."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.fixtures.igrun import IG

PLUGIN = Path(__file__).resolve().parents[1]
PIP = str(Path(sys.executable).with_name("pip"))
IMAGE = "ig-test-busybox:latest"


def ig(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([IG, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})


def gadget_rows(listing: str) -> dict[str, str]:
    """gadget name -> its table line's category and distribution, from `ig list-gadgets`."""
    rows = {}
    for line in listing.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 4 and cells[3].startswith("ig-"):
            rows[cells[2]] = f"{cells[1]} {cells[3]}"
    return rows


def container_script(tag: str, n: int) -> str:
    """Opens /ready-TAG until /tmp/go exists, then /missing-TAG n times, then /sentinel-TAG, then waits."""
    return (f"while [ ! -e /tmp/go ]; do cat /ready-{tag} 2>/dev/null; sleep 0.1; done; "
            f"for i in $(seq {n}); do cat /missing-{tag} 2>/dev/null; done; cat /sentinel-{tag} 2>/dev/null; "
            "sleep 600")


def test_ig_trace_open_shows_a_containers_failed_opens(live_trace, docker):
    """Without --host: N failed opens in a container are exactly N rows, labelled with it; a sentinel
    open after them proves that no further row was on its way."""
    tag, n = uuid.uuid4().hex[:12], 25
    name = f"ig-open-{tag}"
    trace = live_trace("open", "--filter", f"path:~{tag}")
    docker.run("-d", "--network", "none", IMAGE, "sh", "-c", container_script(tag, n), name=name, detach=True)
    assert trace.wait_row(lambda r: r["path"] == f"/ready-{tag}", timeout=60), "ig trace open saw nothing"
    docker.cli("exec", name, "sh", "-c", ": > /tmp/go")
    assert trace.wait_row(lambda r: r["path"] == f"/sentinel-{tag}", timeout=60)
    trace.stop()
    rows = [r for r in trace.rows if r["path"] == f"/missing-{tag}"]
    assert len(rows) == n
    for r in rows:
        assert (r["retval"], r["err"], r["comm"]) == (-2, 2, "cat")
        assert r["k8s.container"] == name and r["runtime.containerName"] == name
        assert r["runtime.runtimeName"] == "docker"


def test_failed_opens_counter_through_ig_prometheus(require_bpf, run_ig, docker, tmp_path):
    """A counter with a selector on ret and path, labelled by container: exact for a container and,
    with --host, for the host (empty container label)."""
    tag, in_container, on_host = uuid.uuid4().hex[:12], 30, 17
    name = f"ig-open-{tag}"
    ig_proc = run_ig(f"""
metrics_name: open_e2e
metrics:
  - name: failed_opens
    type: counter
    category: trace
    gadget: open
    selector: ["ret:<0", "path:~^/.*missing-{tag}$"]
    labels: [k8s.container, retval]
""", "--host")
    docker.run("--rm", "--network", "none", IMAGE, "sh", "-c",
               f"for i in $(seq {in_container}); do cat /missing-{tag} 2>/dev/null; done; cat /etc/passwd >/dev/null",
               name=name)
    missing = str(tmp_path / f"missing-{tag}")
    for _ in range(on_host):
        with pytest.raises(FileNotFoundError):
            open(missing)
    assert ig_proc.wait_for("failed_opens_total", in_container, k8s_container=name) == in_container
    assert ig_proc.value("failed_opens_total", k8s_container=name, retval="-2") == in_container
    assert ig_proc.wait_for("failed_opens_total", on_host, k8s_container="") == on_host
    assert ig_proc.value("ig_events_lost_total", gadget="open") in (None, 0)


def test_list_gadgets_shows_open_with_its_columns():
    listing = ig("list-gadgets")
    assert listing.returncode == 0, listing.stderr
    assert any(" open " in l and "ig-gadget-open" in l for l in listing.stdout.splitlines())
    columns = ig("list-gadgets", "trace", "open")
    assert columns.returncode == 0, columns.stderr
    for name in ("path", "flags", "flagsRaw", "mode", "modeRaw", "fd", "err", "retval", "k8s.container"):
        assert f" {name} " in columns.stdout, name


def test_pip_uninstall_removes_the_gadget(tmp_path):
    """After `pip uninstall ig-gadget-open`, ig lists no open gadget and a config that uses it fails in
    one line naming it; the plugin is reinstalled however the test ends."""
    config = tmp_path / "open.yaml"
    config.write_text("metrics_name: m\nmetrics:\n  - {name: opens, type: counter, category: trace, gadget: open}\n")
    assert ig("prometheus", "--check", "--config", f"@{config}").returncode == 0
    before = gadget_rows(ig("list-gadgets").stdout)
    assert "open" in before
    subprocess.run([PIP, "uninstall", "-y", "-q", "ig-gadget-open"], check=True, capture_output=True)
    try:
        listing = ig("list-gadgets")
        assert listing.returncode == 0, listing.stderr
        after = gadget_rows(listing.stdout)
        assert "ig-gadget-open" not in listing.stdout
        assert after == {k: v for k, v in before.items() if k != "open"}  # nothing else changed
        check = ig("prometheus", "--check", "--config", f"@{config}")
        assert check.returncode == 2
        message = check.stderr.strip()
        assert message.count("\n") == 0 and "Traceback" not in message
        assert 'unknown gadget "open"' in message and 'metric "opens"' in message
        assert ig("list-gadgets", "trace", "open").returncode == 2
    finally:
        subprocess.run([PIP, "install", "-q", "--disable-pip-version-check", "--no-deps", "-e", str(PLUGIN)],
                       check=True, capture_output=True)
    assert ig("prometheus", "--check", "--config", f"@{config}").returncode == 0
