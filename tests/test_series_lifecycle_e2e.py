"""Series leave through a real `ig prometheus`: real containers, the exec gadget, a full series cap."""

from __future__ import annotations

import time
import uuid

IMAGE = "ig-test-busybox:latest"


def config(run_id: str) -> str:
    # Only this test's containers count: other test runs on the machine must not take the one place.
    return (f"{{metrics_name: lifecycle, metrics: [{{name: execs, type: counter, category: trace, gadget: exec, "
            f"labels: [k8s.container, comm], selector: ['comm:cat', 'k8s.container:~^ig-life-[ab]-{run_id}$']}}]}}")


def cats(n: int) -> str:
    return f"for i in $(seq 1 {n}); do cat /dev/null; done"


def poll(condition, timeout: float, what: str, ig) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s:\n{ig.text()}")
        time.sleep(0.1)


def test_series_of_an_exited_container_leaves_and_a_new_one_gets_its_place(run_ig, docker, require_bpf):
    run_id = uuid.uuid4().hex[:8]
    a, b = f"ig-life-a-{run_id}", f"ig-life-b-{run_id}"
    ig = run_ig(config(run_id), "--max-series", "1", "--series-grace", "2", "--series-sweep-period", "0.2")

    docker.run("--network", "none", IMAGE, "sh", "-c", f"{cats(5)}; exec sleep 3600", name=a, detach=True)
    assert ig.wait_for("execs_total", 5, k8s_container=a, comm="cat") == 5, ig.text()

    # The cap of 1 is reached: while a runs, b's events are dropped and counted.
    docker.run("--network", "none", IMAGE, "sh", "-c", f"{cats(4)}; exec sleep 3600", name=b, detach=True)
    assert ig.wait_for("ig_series_dropped_total", 4, metric="execs") == 4, ig.text()
    assert ig.value("execs_total", k8s_container=b) is None
    assert ig.value("ig_series_expired_total", metric="execs", reason="container_gone") == 0

    docker.rm(a)
    poll(lambda: ig.value("execs_total", k8s_container=a) is None, 60, f"{a}'s series did not leave", ig)
    assert ig.value("ig_series_expired_total", metric="execs", reason="container_gone") == 1
    assert ig.value("ig_series", metric="execs") == 0

    # The place is free: b's next events are counted; those dropped before stay dropped.
    docker.cli("exec", b, "sh", "-c", cats(3))
    assert ig.wait_for("execs_total", 3, k8s_container=b, comm="cat") == 3, ig.text()
    assert ig.value("ig_series_dropped_total", metric="execs") == 4
    assert ig.value("ig_series", metric="execs") == 1
    assert ig.value("ig_series_expired_total", metric="execs", reason="container_gone") == 1
    assert ig.value("ig_series_expired_total", metric="execs", reason="idle") == 0
