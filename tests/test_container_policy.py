"""The container collection's policy without root, containers or /proc: merge precedence, the
shared-netns views, pod sandboxes and every timing window, driven by an injected clock and a probe
that answers from a table (what /proc would say of each pid)."""

from __future__ import annotations

from igcore.containers import HOST, PENDING, Container, ContainerCollection, Outcome, Windows
from igcore.containers.merge import STATE, Probed, StateFacts, after_exit, merge, netns_view
from igcore.containers.runc import RuncState
from igcore.containers.sources import CgroupTracker, NodeNameSource

MOUNT = "/sys/fs/cgroup"
HOST_NETNS, HOST_MNTNS = 4026531840, 4026531841
DOCKER = "docker"   # docker's Engine API source reports under its runtime's name
K8S = {"io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-name": "web-1"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TableProbe:
    """What /proc and cgroupfs would say: pid -> (mntns, netns, cgroup id)."""

    def __init__(self) -> None:
        self.pids: dict[int, tuple[int, int, int]] = {}
        self.dead: set[int] = set()

    def host_namespaces(self):
        return {"netns": HOST_NETNS, "mntns": HOST_MNTNS}

    def namespaces(self, pid):
        mntns, netns, _ = self.pids.get(pid, (0, 0, 0))
        return mntns, netns

    def alive(self, state):
        return state.pid in self.pids and state.pid not in self.dead

    def relative(self, path):
        return path[len(MOUNT):] if path.startswith(MOUNT) else None

    def cgroup_id_of_path(self, path):
        return 0

    def cgroup_id_of_pid(self, pid):
        return self.pids.get(pid, (0, 0, 0))[2]


def make(node: str = "") -> tuple[ContainerCollection, CgroupTracker, TableProbe, Clock]:
    clock, probe = Clock(), TableProbe()
    tracker = CgroupTracker(mount=None, find_mount=False, clock=clock, use_bpf=False)
    collection = ContainerCollection([NodeNameSource(node), tracker], clock=clock, probe=probe)
    for source in collection.sources:
        source.start(collection)   # no mount: the tracker only remembers what it is told
    return collection, tracker, probe, clock


def docker_meta(name: str, pid: int = 0, **k8s) -> dict:
    return {"name": name, "image": f"{name}:1", "pid": pid, "k8s_namespace": k8s.get("ns", ""),
            "k8s_pod": k8s.get("pod", ""), "k8s_container": k8s.get("container", ""),
            "sandbox": k8s.get("sandbox", False)}


def run(collection, probe, cid, pid, netns, cgroup_id=0, **k8s) -> Container:
    probe.pids[pid] = (pid + 1000, netns, cgroup_id)   # own mount namespace, maybe a shared netns
    collection.report(DOCKER, cid, docker_meta(cid, pid, **k8s), running=True)
    return collection.get(cid)


# -- merge precedence ---------------------------------------------------------------------------
def state(pid: int, annotations: dict) -> StateFacts:
    return StateFacts("containerd", RuncState("c1", pid, annotations, f"{MOUNT}/k8s/c1", "/run/containerd/runc"))


def test_docker_metadata_wins_over_a_states_and_the_runtime_is_docker():
    sightings = {STATE: state(7, {**K8S, "io.kubernetes.cri.container-name": "web"}),
                 DOCKER: docker_meta("shop-web", 9, ns="", pod="", container="")}
    found = merge("c1", sightings, None, Probed(cgroup_id=5, mntns=1, netns=2), "node-1")
    assert (found.runtime, found.name, found.image) == ("docker", "shop-web", "shop-web:1")
    # Kubernetes names docker does not have come from the state's annotations; the state's pid wins
    assert (found.k8s_namespace, found.k8s_pod, found.k8s_container) == ("shop", "web-1", "web")
    assert (found.pid, found.cgroup_id, found.mntns, found.netns, found.node_name) == (7, 5, 1, 2, "node-1")


def test_state_alone_names_the_container_from_its_annotations():
    found = merge("c1", {STATE: state(7, {**K8S, "nerdctl/name": "web",
                                          "io.kubernetes.cri.image-name": "shop/web:1"})}, None, Probed())
    assert (found.runtime, found.name, found.image, found.k8s_pod) == ("containerd", "web", "shop/web:1", "web-1")


def test_what_was_known_is_kept_and_nothing_known_is_no_container():
    old = Container(id="c1", name="web", runtime="runc", image="web:1", pid=7, cgroup_id=5, mntns=1, netns=2)
    again = merge("c1", {STATE: state(7, {})}, old, Probed())   # same init: namespaces are not read again
    assert (again.name, again.image, again.cgroup_id, again.mntns, again.netns) == ("web", "web:1", 5, 1, 2)
    assert merge("c1", {STATE: state(0, {})}, None, Probed()).name == "c1"   # no name anywhere: the id
    assert merge("c1", {}, old, Probed()) is None


def test_after_exit_drops_the_state_and_dockers_pid():
    kept = after_exit({STATE: state(7, {}), DOCKER: docker_meta("web", 9)})
    assert set(kept) == {DOCKER} and kept[DOCKER]["pid"] == 0 and kept[DOCKER]["name"] == "web"


# -- shared network namespaces ----------------------------------------------------------------
def member(cid, pod="", sandbox=False, name=None):
    return Container(id=cid, name=name or cid, runtime="docker", netns=7, k8s_namespace="shop" if pod else "",
                     k8s_pod=pod, k8s_container="" if sandbox else cid, sandbox=sandbox)


def test_netns_views():
    sandbox, web, proxy = member("pause", "web-1", sandbox=True), member("web", "web-1"), member("proxy", "web-1")
    pod = sandbox.pod_only()
    assert netns_view([web], set()) == web                              # one container
    assert netns_view([sandbox], set()) == pod                          # a sandbox alone: the pod
    assert netns_view([sandbox, web], set()) == web                     # a pod with one workload
    assert netns_view([sandbox, web, proxy], set()) == pod              # several: the pod, no container
    assert netns_view([sandbox, web, proxy], {"proxy"}) == web          # an exited one does not count
    first, joined = member("first"), member("joined")
    assert netns_view([first, joined], set()) == first                  # outside Kubernetes: the one that made it
    assert netns_view([first], {"first"}) == first                      # exited, but still the only one
    assert netns_view([], set()) is None


def test_collection_gives_the_pod_by_netns_and_the_sandbox_is_nobodys_workload():
    collection, _, probe, _ = make(node="node-1")
    pause = run(collection, probe, "pause", 10, 7, cgroup_id=110, ns="shop", pod="web-1", sandbox=True)
    web = run(collection, probe, "web", 11, 7, cgroup_id=111, ns="shop", pod="web-1", container="web")
    assert collection.resolve("cgroup_id", 110) is HOST and collection.resolve("mntns", pause.mntns) is HOST
    assert collection.lookup("netns", 7) == web and collection.lookup("cgroup_id", 111) == web
    assert web.columns()["k8s.node"] == "node-1"
    run(collection, probe, "proxy", 12, 7, cgroup_id=112, ns="shop", pod="web-1", container="proxy")
    assert collection.lookup("netns", 7) == pause.pod_only()
    collection.report_exit("proxy")
    assert collection.lookup("netns", 7) == web
    # a container in the host's namespace (--network host) does not claim the host's rows
    hostnet = run(collection, probe, "hostnet", 13, HOST_NETNS, cgroup_id=113)
    assert collection.resolve("netns", HOST_NETNS) is HOST and collection.lookup("cgroup_id", 113) == hostnet


# -- timing windows ---------------------------------------------------------------------------
def test_a_new_cgroup_is_pending_only_while_young():
    collection, tracker, _, clock = make()
    tracker.record(500, "/system.slice/new.service", born=True)
    assert collection.resolve("cgroup_id", 500) is PENDING
    clock.now += Windows().young_cgroup + 0.01
    assert collection.resolve("cgroup_id", 500) is HOST
    tracker.record(501, "/system.slice/old.service", born=False)   # seen at start: a host's at once
    assert collection.resolve("cgroup_id", 501) is HOST


def test_a_containers_cgroup_waits_for_its_runtime_until_the_claim_window_ends():
    collection, tracker, probe, clock = make()
    cid = "ab" * 32
    tracker.record(600, f"/docker/{cid}", born=True)
    clock.now += Windows().claim - 0.01
    assert collection.resolve("cgroup_id", 600) is PENDING
    clock.now += 0.02
    assert collection.resolve("cgroup_id", 600) is HOST
    # the runtime speaks late: the cgroup the tracker saw is the container's
    probe.pids[20] = (1, 2, 0)
    collection.report(DOCKER, cid, docker_meta("late", 20), running=True)
    found = collection.resolve("cgroup_id", 600)
    assert found.outcome is Outcome.CONTAINER and found.container.name == "late" and found.container.cgroup_id == 600


def test_an_unseen_cgroup_is_pending_and_asks_for_a_rescan():
    collection, tracker, _, _ = make()
    assert collection.resolve("cgroup_id", 999) is PENDING and tracker._miss
    assert collection.resolve("cgroup_id", 0) is HOST


def test_unknown_namespaces_are_pending_only_while_a_container_starts():
    collection, _, probe, clock = make()
    assert collection.resolve("netns", 4242) is HOST
    collection.report(DOCKER, "created", docker_meta("created"))   # `docker create`: no process, no netns
    assert collection.resolve("netns", 4242) is PENDING
    clock.now += Windows().starting + 0.01
    assert collection.resolve("netns", 4242) is HOST
    collection.expire()
    assert collection.starting_since() == []


def test_exited_containers_resolve_late_rows_until_forgotten():
    collection, _, probe, clock = make()
    removed = []
    collection.subscribe(lambda c: None, removed.append)
    web = run(collection, probe, "web", 30, 8, cgroup_id=300)
    collection.report_exit("web")
    assert removed == [web] and collection.containers() == []
    clock.now += Windows().keep_exited - 1
    collection.expire()
    assert collection.lookup("cgroup_id", 300) == web and collection.containers(include_exited=True) == [web]
    clock.now += 2
    collection.expire()
    assert collection.lookup("cgroup_id", 300) is None and collection.containers(include_exited=True) == []


def test_a_restarted_container_is_announced_again_with_its_new_process():
    collection, _, probe, _ = make()
    added, removed = [], []
    collection.subscribe(added.append, removed.append)
    first = run(collection, probe, "web", 40, 9)
    collection.report_exit("web")
    probe.pids[41] = (1041, 10, 0)
    collection.report(DOCKER, "web", {"pid": 41}, running=True)
    assert [c.pid for c in added] == [40, 41] and removed == [first]
    assert collection.lookup("netns", 10).pid == 41 and collection.lookup("netns", 9) is None


def test_a_failing_subscriber_is_counted_and_others_are_still_told():
    from igcore.health import loop_errors

    collection, _, probe, _ = make()
    before = loop_errors.counts().get(("containers.subscriber", ""), 0)
    told = []

    def broken(container):
        raise RuntimeError("plugin bug")

    collection.subscribe(broken, lambda c: None)
    collection.subscribe(told.append, lambda c: None)
    web = run(collection, probe, "web", 50, 11)
    assert told == [web] and loop_errors.counts()[("containers.subscriber", "")] == before + 1
