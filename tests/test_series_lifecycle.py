"""Series leave: the sweep over real aggregators, with an injected clock and a list of live containers."""

from __future__ import annotations

import time

from igcore.containers.model import HOST_COLUMNS, Container
from igcore.health import loop_errors
from igcore.metrics.aggregators import CounterAggregator, HistogramAggregator
from igcore.metrics.lifecycle import CONTAINER_GONE, EVICTED, IDLE, SeriesPolicy, SeriesSweeper

from tests.fixtures.aggregation import bound, exposition, samples

GRACE = 60.0


class Clock:
    """Seconds set by the test, shared by the aggregators and the sweep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def container(name: str, cid: str = "", namespace: str = "", pod: str = "", k8s_name: str = "") -> Container:
    return Container(id=cid or f"id-{name}", name=name, runtime="docker", image="busybox", pid=1, netns=1,
                     k8s_namespace=namespace, k8s_pod=pod, k8s_container=k8s_name)


def row(container_: Container | None = None, **columns) -> dict:
    """A row as the enricher hands it over: the container's columns, or the host's (empty)."""
    base = container_.columns() if container_ else HOST_COLUMNS
    return {**base, "comm": "", "pid": 0, "lat": 0, **columns}


class World:
    """Aggregators, the containers alive now, and a sweep over both, on one clock."""

    def __init__(self, *aggregators, grace: float = GRACE, idle_timeout: float = 0.0) -> None:
        self.clock = Clock()
        self.live: list[Container] = []
        self.aggregators = list(aggregators)
        for aggregator in self.aggregators:
            aggregator._clock = self.clock
        self.sweeper = SeriesSweeper(lambda: self.aggregators, lambda: list(self.live),
                                     SeriesPolicy(grace=grace, idle_timeout=idle_timeout), clock=self.clock)

    def at(self, seconds: float) -> World:
        self.clock.now = 1000.0 + seconds
        return self

    def sweep(self) -> dict[str, int]:
        return self.sweeper.sweep()


def counter(labels, **kw) -> CounterAggregator:
    return CounterAggregator(bound("execs", "counter", labels), **kw)


# --- container gone ---------------------------------------------------------------------------


def test_series_of_a_gone_container_leaves_after_the_grace_period_and_others_stay_exact():
    a, b = container("a"), container("b")
    agg = counter(["k8s.container", "comm"])
    world = World(agg)
    world.live = [a, b]
    agg.ingest([row(a, comm="cat")] * 3 + [row(b, comm="sh")] * 2 + [row(comm="init")])
    world.at(10).live = [b]   # a exits at t=10; its last event was at t=0

    assert world.at(GRACE - 0.001).sweep() == {CONTAINER_GONE: 0, IDLE: 0}
    assert 'execs_total{comm="cat",k8s_container="a"} 3.0' in samples(exposition(agg.collect))

    assert world.at(GRACE).sweep() == {CONTAINER_GONE: 1, IDLE: 0}
    assert samples(exposition(agg.collect)) == ['execs_total{comm="sh",k8s_container="b"} 2.0',
                                                'execs_total{comm="init",k8s_container=""} 1.0']
    assert agg.series_expired == {CONTAINER_GONE: 1}
    assert agg.series_count == 2

    # b and the host series never leave while b lives: the host series has no container at all
    world.at(10 * GRACE).sweep()
    assert agg.series_count == 2 and agg.series_expired[CONTAINER_GONE] == 1


def test_late_events_of_a_gone_container_restart_its_grace_period():
    a = container("a")
    agg = counter(["k8s.container"])
    world = World(agg)
    agg.ingest([row(a)])
    world.at(50)   # a is gone (never in `live`), but an event it emitted before exiting arrives late
    agg.ingest([row(a)])
    assert world.at(50 + GRACE - 1).sweep()[CONTAINER_GONE] == 0
    assert world.at(50 + GRACE).sweep()[CONTAINER_GONE] == 1
    assert agg.series_count == 0


def test_a_series_that_moves_while_the_sweep_decides_stays():
    a = container("a")
    agg = counter(["k8s.container"])
    world = World(agg)
    agg.ingest([row(a)])
    seen = agg.last_moved()   # what the sweep read: moved at t=0
    world.at(GRACE + 1)
    agg.ingest([row(a)])      # moves before the sweep removes it
    assert agg.expire(seen, CONTAINER_GONE) == 0
    assert samples(exposition(agg.collect)) == ['execs_total{k8s_container="a"} 2.0']
    assert agg.series_expired[CONTAINER_GONE] == 0


def test_a_restarted_container_keeps_series_labelled_by_name_but_not_by_id():
    old, new = container("web", cid="1111"), container("web", cid="2222")
    by_name, by_id = counter(["k8s.container"]), counter(["runtime.containerId"])
    world = World(by_name, by_id)
    for agg in (by_name, by_id):
        agg.ingest([row(old)])
    world.at(GRACE).live = [new]
    assert world.sweep() == {CONTAINER_GONE: 1, IDLE: 0}
    assert samples(exposition(by_name.collect)) == ['execs_total{k8s_container="web"} 1.0']
    assert samples(exposition(by_id.collect)) == []


def test_a_namespace_or_pod_label_lives_while_any_of_its_containers_runs():
    web = container("web-c", namespace="prod", pod="web", k8s_name="app")
    side = container("side-c", namespace="prod", pod="web", k8s_name="sidecar")
    by_namespace = counter(["k8s.namespace"])
    # a pod's shared network namespace: rows carry the pod with no container (Container.pod_only)
    by_pod = counter(["k8s.namespace", "k8s.pod", "k8s.container", "comm"])
    world = World(by_namespace, by_pod)
    world.live = [web, side]
    by_namespace.ingest([row(web), row(side)])
    by_pod.ingest([row(web.pod_only(), comm="nslookup"), row(side, comm="sh")])

    world.at(GRACE).live = [web]   # the sidecar exits
    assert world.sweep() == {CONTAINER_GONE: 1, IDLE: 0}
    assert samples(exposition(by_namespace.collect)) == ['execs_total{k8s_namespace="prod"} 2.0']
    assert samples(exposition(by_pod.collect)) == [
        'execs_total{comm="nslookup",k8s_container="",k8s_namespace="prod",k8s_pod="web"} 1.0']

    world.live = []                # and then the whole pod
    assert world.sweep() == {CONTAINER_GONE: 2, IDLE: 0}
    assert by_namespace.series_count == by_pod.series_count == 0


def test_node_and_process_labels_alone_never_count_as_a_gone_container():
    a = container("a")
    agg = counter(["k8s.node", "comm", "pid"])
    world = World(agg)
    agg.ingest([row(a, comm="cat", pid=7)])
    assert world.at(100 * GRACE).sweep() == {CONTAINER_GONE: 0, IDLE: 0}
    assert agg.series_count == 1


# --- idle timeout -----------------------------------------------------------------------------


def test_idle_timeout_removes_series_that_have_not_moved_and_only_those():
    agg = counter(["pid"])
    world = World(agg, idle_timeout=30)
    agg.ingest([row(pid=1), row(pid=2), row(pid=2)])
    world.at(20)
    agg.ingest([row(pid=2), row(pid=3)])

    assert world.at(29.9).sweep() == {CONTAINER_GONE: 0, IDLE: 0}
    assert world.at(30).sweep() == {CONTAINER_GONE: 0, IDLE: 1}
    assert samples(exposition(agg.collect)) == ['execs_total{pid="2"} 3.0', 'execs_total{pid="3"} 1.0']
    assert world.at(50).sweep() == {CONTAINER_GONE: 0, IDLE: 2}
    assert agg.series_expired == {IDLE: 3}

    # the label set comes back: it starts again from 0
    agg.ingest([row(pid=2)])
    assert samples(exposition(agg.collect)) == ['execs_total{pid="2"} 1.0']


def test_idle_timeout_is_off_by_default():
    agg = counter(["pid"])
    world = World(agg)
    agg.ingest([row(pid=1)])
    assert world.at(1e9).sweep() == {CONTAINER_GONE: 0, IDLE: 0}
    assert agg.series_count == 1


def test_idle_timeout_applies_to_container_series_too_and_a_gone_container_is_named_first():
    a, b = container("a"), container("b")
    agg = counter(["k8s.container", "pid"])
    world = World(agg, idle_timeout=GRACE)
    world.live = [b]
    agg.ingest([row(a, pid=1), row(b, pid=2)])
    assert world.at(GRACE).sweep() == {CONTAINER_GONE: 1, IDLE: 1}


# --- the cap ------------------------------------------------------------------------------------


def test_cap_has_room_again_once_a_series_left():
    a, b, c = container("a"), container("b"), container("c")
    agg = counter(["k8s.container"], max_series=2)
    world = World(agg)
    world.live = [a, b, c]
    agg.ingest([row(a)] * 2)
    agg.ingest([row(b)] * 3)

    world.at(GRACE).live = [b, c]
    assert world.sweep()[CONTAINER_GONE] == 1
    agg.ingest([row(c)] * 4)   # room left by a: nothing is evicted
    assert samples(exposition(agg.collect)) == ['execs_total{k8s_container="b"} 3.0',
                                                'execs_total{k8s_container="c"} 4.0']
    assert agg.series_expired == {CONTAINER_GONE: 1}


def test_at_the_cap_the_series_that_moved_least_recently_leaves_whatever_its_age():
    early, busy, quiet, late = container("early"), container("busy"), container("quiet"), container("late")
    agg = counter(["k8s.container"], max_series=3)
    world = World(agg)
    world.live = [early, busy, quiet, late]
    agg.ingest([row(early), row(busy), row(quiet)])
    world.at(5)
    agg.ingest([row(early)] * 10)   # the first series keeps moving: it stays
    world.at(6)
    agg.ingest([row(busy)])
    world.at(7)
    agg.ingest([row(late)])         # quiet moved least recently (t=0)
    assert samples(exposition(agg.collect)) == ['execs_total{k8s_container="early"} 11.0',
                                                'execs_total{k8s_container="busy"} 2.0',
                                                'execs_total{k8s_container="late"} 1.0']
    assert agg.series_expired == {EVICTED: 1}
    # the sweep reads the evicted series no more, and evictions are not the sweep's
    assert sorted(when for _, when in agg.last_moved()) == [1005.0, 1006.0, 1007.0]
    assert world.at(10 * GRACE).sweep() == {CONTAINER_GONE: 0, IDLE: 0}


def test_histogram_series_leave_and_the_others_keep_exact_buckets():
    a, b = container("a"), container("b")
    agg = HistogramAggregator(bound("lat", "histogram", ["k8s.container"], field="lat", bounds=(10.0,)),
                              max_series=2)
    world = World(agg)
    world.live = [b]
    agg.ingest([row(a, lat=1), row(b, lat=5), row(b, lat=50)])
    assert world.at(GRACE).sweep()[CONTAINER_GONE] == 1
    agg.ingest([row(container("c"), lat=7)])   # room under the cap of 2 again
    assert samples(exposition(agg.collect)) == [
        'lat_bucket{k8s_container="b",le="10.0"} 1.0', 'lat_bucket{k8s_container="b",le="+Inf"} 2.0',
        'lat_count{k8s_container="b"} 2.0', 'lat_sum{k8s_container="b"} 55.0',
        'lat_bucket{k8s_container="c",le="10.0"} 1.0', 'lat_bucket{k8s_container="c",le="+Inf"} 1.0',
        'lat_count{k8s_container="c"} 1.0', 'lat_sum{k8s_container="c"} 7.0',
    ]


# --- the thread ---------------------------------------------------------------------------------


def test_the_sweep_thread_runs_every_period_and_survives_a_failing_pass():
    a = container("a")
    agg = counter(["k8s.container"])
    agg.ingest([row(a)])
    passes = []

    def aggregators():
        passes.append(1)
        if len(passes) == 1:
            raise RuntimeError("config swapped under the sweep")
        return [agg]

    errors_before = loop_errors.counts().get(("series-sweep", ""), 0)
    sweeper = SeriesSweeper(aggregators, lambda: [], SeriesPolicy(grace=0.0, sweep_period=0.1))
    sweeper.start()
    try:
        deadline = time.monotonic() + 30
        while agg.series_count and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweeper.stop()
    assert agg.series_count == 0 and agg.series_expired[CONTAINER_GONE] == 1
    assert loop_errors.counts()[("series-sweep", "")] == errors_before + 1
