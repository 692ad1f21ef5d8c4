"""Series leave through a real `ig prometheus`: real containers, the exec gadget, a full series cap."""

from __future__ import annotations

import time
import uuid

from .fixtures.prometheus import write_config
from .fixtures.waiting import wait_until

IMAGE = "ig-test-busybox:latest"


def config(run_id: str) -> str:
    # Only this test's containers count: other test runs on the machine must not take the one place.
    return (f"{{metrics_name: lifecycle, metrics: [{{name: execs, type: counter, category: trace, gadget: exec, "
            f"labels: [k8s.container, comm], selector: ['comm:cat', 'k8s.container:~^ig-life-[ab]-{run_id}$']}}]}}")


def cats(n: int) -> str:
    return f"for i in $(seq 1 {n}); do cat /dev/null; done"


def test_series_of_an_exited_container_leaves_and_a_new_one_gets_its_place(run_ig, docker, require_bpf):
    run_id = uuid.uuid4().hex[:8]
    a, b = f"ig-life-a-{run_id}", f"ig-life-b-{run_id}"
    ig = run_ig(config(run_id), "--max-series", "1", "--series-grace", "2", "--series-sweep-period", "0.2")

    docker.run("--network", "none", IMAGE, "sh", "-c", f"{cats(5)}; exec sleep 3600", name=a, detach=True)
    assert ig.wait_for("execs_total", 5, k8s_container=a, comm="cat") == 5, ig.text()
    assert ig.value("ig_series_expired_total", metric="execs", reason="container_gone") == 0

    docker.rm(a)
    wait_until(lambda: ig.value("execs_total", k8s_container=a) is None,
               lambda: f"{a}'s series to leave; the scrape:\n{ig.text()}", timeout=60)
    assert ig.value("ig_series_expired_total", metric="execs", reason="container_gone") == 1
    assert ig.value("ig_series", metric="execs") == 0

    # The place under the cap of 1 is free: b's series takes it without evicting anything.
    docker.run("--network", "none", IMAGE, "sh", "-c", f"{cats(4)}; exec sleep 3600", name=b, detach=True)
    assert ig.wait_for("execs_total", 4, k8s_container=b, comm="cat") == 4, ig.text()
    assert ig.value("ig_series", metric="execs") == 1
    assert ig.value("ig_series_expired_total", metric="execs", reason="container_gone") == 1
    assert ig.value("ig_series_expired_total", metric="execs", reason="evicted") == 0
    assert ig.value("ig_series_expired_total", metric="execs", reason="idle") == 0
    assert ig.value("ig_series_dropped_total", metric="execs") == 0


def test_prometheus_sees_a_series_that_left_go_stale_and_its_return_as_a_counter_reset(
        run_ig, prometheus_server, docker, require_bpf, tmp_path):
    """What docs/config.md says a user sees in Prometheus, with Debian's Prometheus scraping ig."""
    run_id = uuid.uuid4().hex[:8]
    a = f"ig-life-a-{run_id}"
    series = f'execs_total{{k8s_container="{a}", comm="cat"}}'
    ig = run_ig(config(run_id), "--series-grace", "2", "--series-sweep-period", "0.2")
    prom = prometheus_server(write_config(tmp_path / "prometheus.yml", ig.address))

    docker.run("--network", "none", IMAGE, "sh", "-c", f"{cats(5)}; exec sleep 3600", name=a, detach=True)
    assert ig.wait_for("execs_total", 5, k8s_container=a) == 5, ig.text()
    assert prom.wait_for(series, lambda r: r and r[0]["value"][1] == "5"), "Prometheus never saw 5"

    docker.rm(a)
    wait_until(lambda: ig.value("execs_total", k8s_container=a) is None,
               lambda: f"{a}'s series to leave; the scrape:\n{ig.text()}", timeout=60)
    prom.wait_for_scrape_after(time.time())
    assert prom.query(series) == []                              # stale at once: absent from an instant query
    assert value_of(prom.query(f"max_over_time({series}[10m])")) == 5  # its past samples stay

    # The same label set comes back (a new container of that name): ig counts it from 0 again.
    docker.run("--network", "none", IMAGE, "sh", "-c", f"{cats(2)}; exec sleep 3600", name=a, detach=True)
    assert ig.wait_for("execs_total", 2, k8s_container=a) == 2, ig.text()
    assert prom.wait_for(series, lambda r: r and r[0]["value"][1] == "2"), "Prometheus never saw the new 2"
    assert value_of(prom.query(f"resets({series}[10m])")) == 1  # 5, then 2: a counter reset for rate()/increase()


def value_of(result: list[dict]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])
