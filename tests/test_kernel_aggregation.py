"""Metrics computed in the kernel, through a real `ig prometheus` and the real exec gadget: counts kept
by a reload that recompiles the program, and the map entries of a container that has gone folded
into its series and deleted (the maps stay bounded; the series keeps its count)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest


def _metric(name: str, comm: str, labels: str = "[comm]") -> str:
    return f"""  - name: {name}
    type: counter
    category: trace
    gadget: exec
    selector: ["comm:{comm}"]
    labels: {labels}
"""


@pytest.fixture
def program():
    folder = Path(tempfile.mkdtemp(prefix="ig-kagg-"))
    path = folder / ("igk" + uuid.uuid4().hex[:10])
    shutil.copy("/bin/true", path)
    yield path
    shutil.rmtree(folder)


def _run(path: Path, times: int) -> None:
    for _ in range(times):
        subprocess.run([str(path)], check=True)


def test_reload_that_recompiles_keeps_the_counts(require_bpf, run_ig, program, tmp_path):
    comm = program.name
    config = tmp_path / "config.yaml"
    config.write_text(f"metrics_name: kagg\nmetrics:\n{_metric('kept', comm)}")
    ig = run_ig(f"@{config}", "--host")
    assert ig.value("ig_metric_aggregation", metric="kept", path="kernel") == 1
    _run(program, 5)
    assert ig.wait_for("kept_total", 5, comm=comm) == 5

    # a second metric in the kernel: the program is compiled again, the kept metric's map is new
    config.write_text(f"metrics_name: kagg\nmetrics:\n{_metric('kept', comm)}{_metric('added', comm, '[]')}")
    ig.proc.send_signal(signal.SIGHUP)
    assert ig.wait_value("ig_config_reloads_total", 1, result="success") == 1
    assert ig.value("kept_total", comm=comm) == 5
    _run(program, 3)
    assert ig.wait_for("kept_total", 8, comm=comm) == 8
    assert ig.value("added_total") == 3

    # back to one metric, and one more in user space: compiled again, both counts carry on
    by_args = _metric("by_args", comm, "[]").replace(f'"comm:{comm}"', f'"args:~{comm}"')
    config.write_text(f"metrics_name: kagg\nmetrics:\n{_metric('kept', comm)}{by_args}")
    ig.proc.send_signal(signal.SIGHUP)
    assert ig.wait_value("ig_config_reloads_total", 2, result="success") == 2
    assert ig.value("ig_metric_aggregation", metric="by_args", path="user") == 1
    _run(program, 2)
    assert ig.wait_for("kept_total", 10, comm=comm) == 10
    assert ig.wait_for("by_args_total", 2) == 2
    assert ig.value("added_total") is None
    assert ig.stop(signal.SIGTERM) == 0
    assert "Traceback" not in ig.output()


def test_gone_containers_entries_are_folded_and_deleted(require_bpf, run_ig, docker, busybox_image):
    comm = "igf" + uuid.uuid4().hex[:8]
    name = f"ig-kfold-{uuid.uuid4().hex[:8]}"
    ig = run_ig(f"metrics_name: kfold\nmetrics:\n{_metric('folded', comm, '[k8s.container]')}",
                "--series-grace", "600", "--series-sweep-period", "0.5")
    # busybox run under another name: the exec succeeds (comm is the file's name), the applet is unknown
    docker.run("--rm", "--network", "none", busybox_image, "sh", "-c",
               f"cp /bin/busybox /tmp/{comm}; for i in $(seq 10); do /tmp/{comm} 2>/dev/null; done; true", name=name)
    assert ig.wait_for("folded_total", 10, k8s_container=name) == 10
    # the container has exited: once the collection knows, its entry is read a last time and deleted
    assert ig.wait_value("ig_kernel_map_entries", 0, gadget="exec") == 0, ig.text()
    assert ig.value("folded_total", k8s_container=name) == 10
    assert ig.value("ig_series", metric="folded") == 1


def test_maps_are_read_whole_across_batches(require_bpf, program, monkeypatch):
    """More entries than one batch system call returns: every one is read, once."""
    from igcore.config import load_config_text
    from igcore.gadgets import GadgetContext
    from igcore.kernel import KernelProgram, place, program as program_module
    from igcore.plugins import load_catalog

    monkeypatch.setattr(program_module, "CHUNK", 7)
    cfg = load_config_text(f"metrics_name: kb\nmetrics:\n{_metric('by_pid', program.name, '[pid]')}", "test",
                           load_catalog())
    bound = cfg.metrics[0]
    kernel = KernelProgram(bound.spec, [(bound, place(bound))], ring_needed=False, max_series=100)
    gadget = bound.spec.factory(GadgetContext(kernel=kernel))
    gadget.start(lambda rows: None)
    try:
        _run(program, 50)
        entries = kernel.read(0)
    finally:
        gadget.stop()
    layout = kernel.layouts[0]
    pids = [layout.key.unpack(key)[2] for key, _ in entries]
    assert len(pids) == len(set(pids)) == 50
    assert all(layout.value.unpack(value) == (1,) for _, value in entries)


def test_300_counters_with_selectors_count_exactly(require_bpf, run_ig, tmp_path):
    """A large config compiles into a program of bounded size (docs/config.md, "Start-up and memory")
    that counts every metric exactly: 300 counters, each for one of three programs, with one of three shared
    selectors that every exec here matches and one of three label sets; all 300 in the kernel."""
    folder = Path(tempfile.mkdtemp(prefix="ig-kbig-"))
    programs = []
    for letter in "abc":
        path = folder / f"igb{uuid.uuid4().hex[:8]}{letter}"
        shutil.copy("/bin/true", path)
        programs.append(path)
    shared, labels = ["retval:0", "uid:0", "gid:<100"], ["[comm]", "[]", "[uid, comm]"]
    metrics = "".join(f"  - name: big_{i}\n    type: counter\n    category: trace\n    gadget: exec\n"
                      f"    selector: [\"comm:{programs[i % 3].name}\", \"{shared[i // 3 % 3]}\"]\n"
                      f"    labels: {labels[i // 9 % 3]}\n" for i in range(300))
    config = tmp_path / "config.yaml"
    config.write_text(f"metrics_name: kbig\nmetrics:\n{metrics}")
    try:
        ig = run_ig(f"@{config}", "--host")
        assert ig.wait_value("ig_gadget_running", 1, timeout=120, category="trace", gadget="exec") == 1, ig.output()
        runs = {path.name: times for path, times in zip(programs, (3, 5, 7))}
        for path in programs:
            _run(path, runs[path.name])
        assert ig.wait_for("big_299_total", 7) == 7   # the last metric, of the third program
        scrape = ig.samples()
        series = [(name, value) for (name, _), value in scrape.items() if name.startswith("big_")]
        assert dict(series) == {f"big_{i}_total": runs[programs[i % 3].name] for i in range(300)}
        assert len(series) == 300   # one series each
        in_kernel = {dict(ls)["metric"] for (name, ls), value in scrape.items()
                     if name == "ig_metric_aggregation" and dict(ls)["path"] == "kernel" and value == 1}
        assert in_kernel == {f"big_{i}" for i in range(300)}
        assert ig.value("big_0_total", comm=programs[0].name) == 3
        assert ig.value("big_10_total") == 5
        assert ig.value("big_20_total", uid="0", comm=programs[2].name) == 7
    finally:
        shutil.rmtree(folder)
