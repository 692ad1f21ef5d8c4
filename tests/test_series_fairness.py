"""Fair series caps (docs/config.md, "Series lifecycle"): at --max-series, a new label set evicts the
series updated least recently, so a workload with many command names cannot keep later commands out
of a metric. Through a real `ig prometheus`: the synthetic gadget for the order and the self
metrics, and the real exec gadget with an unprivileged user, on the kernel and the user-space path."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.fixtures.aggregation import exposition, samples
from tests.fixtures.waiting import wait_until


GROUP = 54321      # the workloads' group: the metric counts their execs only, not the machine's others
NOBODY = 65534     # the unprivileged user with many command names
LATER_USER = 1000  # another unprivileged user, who comes later


# --- the synthetic gadget: the order and the self metrics ----------------------------------------


SYNTH = """
metrics_name: fair
metrics:
  - name: events
    type: counter
    category: trace
    gadget: synth
    labels: [comm]
"""


def test_a_new_label_set_evicts_the_series_updated_least_recently(run_ig, synth):
    feed, _ = synth
    ig = run_ig(SYNTH, "--host", "--max-series", "3")
    feed.send({"comm": "a"}, {"comm": "b"}, {"comm": "c"})
    assert ig.wait_for("events_total", 1, comm="c") == 1
    feed.send({"comm": "a"})               # a moves again: b is now the least recently updated
    assert ig.wait_for("events_total", 2, comm="a") == 2
    feed.send({"comm": "d"}, {"comm": "d"})
    assert ig.wait_for("events_total", 2, comm="d") == 2
    assert ig.value("events_total", comm="b") is None
    assert ig.value("events_total", comm="a") == 2 and ig.value("events_total", comm="c") == 1
    assert ig.value("ig_series_expired_total", metric="events", reason="evicted") == 1
    assert ig.value("ig_series", metric="events") == 3
    assert ig.value("ig_series_dropped_total", metric="events") == 0

    feed.send({"comm": "b"})               # b comes back as a new series, from 0; c goes
    assert ig.wait_for("events_total", 1, comm="b") == 1
    assert ig.value("events_total", comm="c") is None
    assert ig.value("ig_series_expired_total", metric="events", reason="evicted") == 2
    assert "evicts the series updated least recently" in ig.output()


# --- the exec gadget: an unprivileged user with many command names ------------------------------


def _exec_metric() -> str:
    return f"""metrics_name: fair
metrics:
  - name: executed_processes
    type: counter
    category: trace
    gadget: exec
    selector: ["gid:{GROUP}"]
    labels: [comm]
"""


@pytest.fixture
def commands():
    """`commands(n)`: n copies of /bin/true under unique names, in a folder every user can read."""
    folders = []

    def make(count: int, link: bool = False) -> list[Path]:
        folder = Path(tempfile.mkdtemp(prefix="ig-fair-"))
        folders.append(folder)
        folder.chmod(0o755)
        paths = []
        for _ in range(count):
            path = folder / ("f" + uuid.uuid4().hex[:12])
            if link:
                path.symlink_to("/bin/true")   # the command's name is the link's
            else:
                shutil.copy("/bin/true", path)
                path.chmod(0o755)
            paths.append(path)
        return paths

    yield make
    for folder in folders:
        shutil.rmtree(folder)


def _run_as(uid: int, *paths: Path) -> None:
    """The commands as `uid` of GROUP, without root's groups, in one shell (counted too: `sh`)."""
    subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={GROUP}", "--clear-groups",
                    "/bin/sh", "-c", 'for f in "$@"; do "$f"; done', "sh", *map(str, paths)], check=True)


def _run_directly_as(uid: int, path: Path) -> None:
    """One command as `uid` of GROUP, with no shell: setpriv runs as root (gid 0) until the exec."""
    subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={GROUP}", "--clear-groups", str(path)], check=True)


def _total(ig) -> float:
    """The sum of the metric over its series."""
    return sum(v for (name, _), v in ig.samples().items() if name == "executed_processes_total")


@pytest.mark.parametrize("path", ["kernel", "user"])
def test_many_command_names_do_not_shut_a_later_command_out(require_bpf, run_ig, commands, path):
    shutil.which("setpriv") or pytest.skip("setpriv (util-linux) is not installed")
    args = ["--host", "--max-series", "50"] + (["--no-kernel-aggregation"] if path == "user" else [])
    ig = run_ig(_exec_metric(), *args)
    assert ig.value("ig_metric_aggregation", metric="executed_processes", path=path) == 1

    _run_as(NOBODY, *commands(60))
    # `sh` and 60 names, each once: 61 label sets under a cap of 50. Which 50 stay depends on the
    # order in which they were updated (on the kernel path, the order a pull reads them in)
    evicted = {"metric": "executed_processes", "reason": "evicted"}
    wait_until(lambda: ig.value("ig_series_expired_total", **evicted) == 11,
               lambda: f"11 evictions; the scrape:\n{ig.text()}")
    assert ig.value("ig_series", metric="executed_processes") == 50
    assert _total(ig) == 50

    later = commands(1)[0]
    for _ in range(3):
        _run_directly_as(LATER_USER, later)
    assert ig.wait_for("executed_processes_total", 3, comm=later.name) == 3, ig.text()
    assert ig.value("ig_series_expired_total", **evicted) == 12
    assert ig.value("ig_series", metric="executed_processes") == 50
    assert _total(ig) == 49 + 3   # the series that stay are exact
    assert ig.value("ig_series_dropped_total", metric="executed_processes") == 0
    assert "Traceback" not in ig.output()


def test_evicted_series_leave_the_kernel_map(require_bpf, run_ig, commands):
    """More command names than the map holds (1024 entries at --max-series 50), across a few pulls:
    the entries of evicted series are deleted, so the map never fills and shuts new names out."""
    shutil.which("setpriv") or pytest.skip("setpriv (util-linux) is not installed")
    ig = run_ig(_exec_metric(), "--host", "--max-series", "50")
    assert ig.value("ig_metric_aggregation", metric="executed_processes", path="kernel") == 1
    evicted = {"metric": "executed_processes", "reason": "evicted"}
    for round_ in range(1, 4):
        _run_as(NOBODY, *commands(500, link=True))
        # a scrape pulls the map: the series evicted by this round's names take their entries along
        wait_until(lambda: (ig.value("ig_series_expired_total", **evicted) or 0) >= 500 * round_ - 50,
                   lambda: f"the round's evictions; the scrape:\n{ig.text()}")
        wait_until(lambda: ig.value("ig_kernel_map_entries", gadget="exec") <= 50,
                   lambda: f"at most 50 map entries; the scrape:\n{ig.text()}")

    later = commands(1)[0]
    _run_directly_as(LATER_USER, later)
    _run_directly_as(LATER_USER, later)
    assert ig.wait_for("executed_processes_total", 2, comm=later.name) == 2, ig.text()
    assert ig.value("ig_series_dropped_total", metric="executed_processes") == 0
    assert ig.value("ig_series", metric="executed_processes") == 50
    # 1500 names and the later one, and `sh` in each round: new again, or kept since the round before
    assert 1501 + 1 - 50 <= ig.value("ig_series_expired_total", **evicted) <= 1501 + 3 - 50


def test_what_an_evicted_series_counted_after_its_last_read_starts_its_next_series(
        require_bpf, commands, tmp_path, monkeypatch):
    """Events that land in an evicted series' map entry between the read and the delete are not
    lost: the next read counts them in a new series of that label set (docs/config.md)."""
    from igcore.config import load_config_text
    from igcore.containers import ContainerCollection, Enricher, RuntimeOptions
    from igcore.gadgets import GadgetContext
    from igcore.kernel import KernelProgram, place
    from igcore.metrics.kernel import KernelCounterAggregator
    from igcore.metrics.lifecycle import EVICTED
    from igcore.plugins import load_catalog


    bound = load_config_text(_exec_metric(), "test", load_catalog()).metrics[0]
    placement = place(bound)
    kernel = KernelProgram(bound.spec, [(bound, placement)], ring_needed=False, max_series=1)
    aggregator = KernelCounterAggregator(bound, placement, max_series=1)
    (tmp_path / "runc").mkdir()   # no runtime knows a container: every process is the host's
    containers = ContainerCollection.for_host(RuntimeOptions(runtimes=("runc",), state_dirs={"runc": (str(tmp_path / "runc"),)}))
    containers.start()
    gadget = bound.spec.factory(GadgetContext(kernel=kernel))
    gadget.start(lambda rows: None)
    try:
        aggregator.attach(kernel, Enricher(containers, bound.spec.container_key, True, lambda rows: None))
        first, second = commands(2)
        line = 'executed_processes_total{{comm="{}"}} {}'.format
        _run_directly_as(NOBODY, first)
        wait_until(lambda: samples(exposition(aggregator.collect)) == [line(first.name, "1.0")])

        take = kernel.take

        def take_after_two_more_events(index, raw):
            monkeypatch.setattr(kernel, "take", take)
            _run_directly_as(NOBODY, first)   # counted in the entry after the pull read it
            _run_directly_as(NOBODY, first)
            return take(index, raw)

        monkeypatch.setattr(kernel, "take", take_after_two_more_events)
        _run_directly_as(NOBODY, second)   # the pull that reads it evicts the first series
        wait_until(lambda: samples(exposition(aggregator.collect)) == [line(second.name, "1.0")])
        assert kernel.take is take and aggregator.series_expired[EVICTED] == 1
        # the next read: the two events make a new series of the first name, which evicts the second
        assert samples(exposition(aggregator.collect)) == [line(first.name, "2.0")]
        assert aggregator.series_expired[EVICTED] == 2
        assert kernel.read(0) == []   # both entries were deleted
    finally:
        gadget.stop()
        containers.stop()


def test_a_series_the_sweep_removes_takes_its_map_entries_along(require_bpf, run_ig, commands):
    """Idle series of host processes (never "gone") leave the kernel map too, not only the exposition."""
    shutil.which("setpriv") or pytest.skip("setpriv (util-linux) is not installed")
    ig = run_ig(_exec_metric(), "--host", "--series-idle-timeout", "1", "--series-sweep-period", "0.2")
    command = commands(1)[0]
    _run_directly_as(NOBODY, command)
    assert ig.wait_for("executed_processes_total", 1, comm=command.name) == 1, ig.text()
    idle = {"metric": "executed_processes", "reason": "idle"}
    wait_until(lambda: ig.value("ig_series_expired_total", **idle) == 1,
               lambda: f"1 idle expiry; the scrape:\n{ig.text()}")
    wait_until(lambda: ig.value("ig_kernel_map_entries", gadget="exec") == 0,
               lambda: f"empty maps; the scrape:\n{ig.text()}")
    _run_directly_as(NOBODY, command)   # back: a new series, from 0
    assert ig.wait_for("executed_processes_total", 1, comm=command.name) == 1, ig.text()
