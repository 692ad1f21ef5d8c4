"""The container collection and enricher on real containers, cgroups and runc bundles."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from igcore.containers import HOST, PENDING, ContainerCollection, Enricher, RuntimeOptions, Windows
from igcore.containers.cgroups import cgroup2_mount
from igcore.containers.model import is_sandbox
from igcore.containers.runc import RuncState
from tests.fixtures.runc import ANNOTATIONS, runc, runc_bundle
from tests.fixtures.waiting import wait_until


@pytest.fixture
def collection(require_bpf):
    reg = ContainerCollection.for_host(RuntimeOptions())
    reg.start()
    yield reg
    reg.stop()


def test_new_docker_container_is_known_quickly_with_its_metadata(collection, docker):
    name = f"ig-coll-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    cid = docker.inspect(name, "{{.Id}}")
    pid = int(docker.inspect(name, "{{.State.Pid}}"))
    netns = os.stat(f"/proc/{pid}/ns/net").st_ino
    found = wait_until(lambda: collection.lookup("netns", netns), interval=0.002)
    print(f"container known {1000 * (time.monotonic() - started):.0f} ms after `docker run -d` began")
    assert found is not None
    cgroup_id = os.stat(f"{cgroup2_mount()}/docker/{cid}").st_ino
    assert collection.lookup("cgroup_id", cgroup_id) == found
    assert collection.lookup("mntns", os.stat(f"/proc/{pid}/ns/mnt").st_ino) == found
    assert (found.id, found.name, found.runtime, found.image) == (cid, name, "docker", "ig-test-busybox:latest")
    columns = found.columns()
    assert columns["k8s.container"] == name and columns["k8s.namespace"] == "" and columns["k8s.pod"] == ""
    assert columns["runtime.containerId"] == cid and columns["runtime.runtimeName"] == "docker"
    below = Path(f"{cgroup2_mount()}/docker/{cid}/ig-sub")   # what systemd or a nested runtime makes
    below.mkdir()
    try:
        assert wait_until(lambda: collection.lookup("cgroup_id", below.stat().st_ino), timeout=5) == found
    finally:
        below.rmdir()


def test_docker_kubernetes_labels_become_k8s_names(collection, docker):
    name = f"ig-coll-{uuid.uuid4().hex[:6]}"
    docker.run("-d", "--network", "none", "--label", "io.kubernetes.pod.namespace=prod",
               "--label", "io.kubernetes.pod.name=api-1", "--label", "io.kubernetes.container.name=api",
               "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    pid = int(docker.inspect(name, "{{.State.Pid}}"))
    found = wait_until(lambda: collection.lookup("netns", os.stat(f"/proc/{pid}/ns/net").st_ino))
    assert (found.k8s_namespace, found.k8s_pod, found.k8s_container) == ("prod", "api-1", "api")


def test_short_lived_container_still_resolves_after_it_is_gone(collection, docker):
    name = f"ig-coll-{uuid.uuid4().hex[:6]}"
    docker.run("--rm", "--network", "none", "ig-test-busybox:latest", "true", name=name)
    # the container and its cgroup are gone; what the kernel and docker told us is kept a while
    assert wait_until(lambda: any(c.name == name for c in collection.containers(include_exited=True)), timeout=5)
    found = next(c for c in collection.containers(include_exited=True) if c.name == name)
    assert found.cgroup_id and collection.lookup("cgroup_id", found.cgroup_id) == found


def test_enricher_holds_rows_until_the_container_is_known(require_bpf, tmp_path):
    """A row from a container's cgroup arrives before any runtime knows the container: it is held,
    then labelled once the runtime's state appears; host rows pass at once with --host."""
    mount = cgroup2_mount()
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    cgroup_dir = Path(mount, f"ig-test-{cid[:8]}", f"docker-{cid}.scope")
    root = tmp_path / "runc-root"
    root.mkdir()
    collection = ContainerCollection.for_host(RuntimeOptions(runtimes=("runc",), state_dirs={"runc": (str(root),)}))
    collection.start()
    delivered: list[dict] = []
    enricher = Enricher(collection, "cgroup_id", host=True, sink=delivered.extend, hold_seconds=10)
    init = subprocess.Popen(["sleep", "60"])   # the container's init, moved into its cgroup below
    try:
        cgroup_dir.mkdir(parents=True)
        cgroup_id = cgroup_dir.stat().st_ino
        wait_until(lambda: collection.cgroups.path_of(cgroup_id) is not None, timeout=5)
        host_cgroup = Path(mount).stat().st_ino
        enricher([{"cgroup_id": cgroup_id, "n": 1}, {"cgroup_id": host_cgroup, "n": 2}])
        assert [r["n"] for r in delivered] == [2] and delivered[0]["k8s.container"] == ""
        assert enricher.held == 1
        time.sleep(0.3)
        (cgroup_dir / "cgroup.procs").write_text(str(init.pid))
        state_dir = root / cid
        state_dir.mkdir()
        start = int(Path(f"/proc/{init.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        (state_dir / "state.json").write_text(json.dumps({
            "id": cid, "init_process_pid": init.pid, "init_process_start": start,
            "cgroup_paths": {"": str(cgroup_dir)},
            "config": {"labels": [f"{k}={v}" for k, v in ANNOTATIONS.items()] + ["bundle=/nowhere"]},
        }))
        assert wait_until(lambda: len(delivered) == 2, timeout=5)
        row = delivered[1]
        assert (row["n"], row["k8s.namespace"], row["k8s.pod"], row["k8s.container"]) == (1, "shop", "web-7d4b9", "web")
        assert row["runtime.runtimeName"] == "runc" and enricher.expired == 0
    finally:
        enricher.close()
        collection.stop()
        init.kill()
        init.wait()
        cgroup_dir.rmdir()
        cgroup_dir.parent.rmdir()


RUNC_COUNTER = """
metrics_name: runc
metrics:
  - name: executed_processes
    type: counter
    category: trace
    gadget: exec
    labels: [k8s.namespace, k8s.pod, k8s.container, runtime.runtimeName]
    selector: ["comm:cat"]
"""


def test_plain_runc_container_with_containerd_annotations(run_ig, busybox_rootfs, tmp_path):
    """`runc run` with the default root (/run/runc), seen by a real `ig prometheus`."""
    # runc deletes its state when the process exits: a container of a few milliseconds may be gone
    # before its state is read (rows then count as the host's); this one lingers 0.2 s
    bundle = runc_bundle(busybox_rootfs, tmp_path, ["sh", "-c", "for i in 1 2 3; do cat /dev/null; done; sleep 0.2"],
                         ANNOTATIONS)
    ig = run_ig(RUNC_COUNTER)
    cid = f"ig-runc-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(["runc", "run", cid], cwd=bundle, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    value = ig.wait_for("executed_processes_total", 3, k8s_namespace="shop", k8s_pod="web-7d4b9", k8s_container="web")
    assert value == 3, ig.text()
    assert ig.value("executed_processes_total", k8s_container="web", runtime_runtimeName="runc") == 3


def test_host_network_container_does_not_claim_the_hosts_namespace(collection, docker):
    name = f"ig-coll-{uuid.uuid4().hex[:6]}"
    docker.run("-d", "--network", "host", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    pid = int(docker.inspect(name, "{{.State.Pid}}"))
    found = wait_until(lambda: next((c for c in collection.containers() if c.name == name), None))
    assert found is not None and found.netns == os.stat("/proc/self/ns/net").st_ino
    assert collection.lookup("netns", found.netns) is None          # host rows stay host rows
    assert collection.lookup("cgroup_id", found.cgroup_id) == found  # its own processes are still its
    assert pid > 0


def test_existing_docker_container_is_known_when_start_returns(require_bpf, docker):
    name = f"ig-coll-{uuid.uuid4().hex[:6]}"
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    cid = docker.inspect(name, "{{.Id}}")
    collection = ContainerCollection.for_host(RuntimeOptions(node_name="node-1"))
    started = time.monotonic()
    collection.start()
    try:
        print(f"collection.start() took {1000 * (time.monotonic() - started):.0f} ms")
        found = collection.lookup("cgroup_id", os.stat(f"{cgroup2_mount()}/docker/{cid}").st_ino)
        assert found is not None and found.name == name and found.columns()["k8s.node"] == "node-1"
        added: list = []
        collection.subscribe(added.append, lambda c: None)
        assert found in added
    finally:
        collection.stop()


def test_docker_container_restarted_is_known_again(collection, docker):
    name = f"ig-coll-{uuid.uuid4().hex[:6]}"
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    first = wait_until(lambda: next((c for c in collection.containers() if c.name == name and c.netns), None))
    added, removed = [], []   # of this container only: others may run on the shared dockerd
    collection.subscribe(lambda c: c.id == first.id and added.append(c),
                         lambda c: c.id == first.id and removed.append(c))
    docker.cli("restart", "-t", "0", name)
    pid = int(docker.inspect(name, "{{.State.Pid}}"))
    again = wait_until(lambda: collection.lookup("netns", os.stat(f"/proc/{pid}/ns/net").st_ino))
    assert again is not None and again.id == first.id and again.pid == pid != first.pid
    wait_until(lambda: [c.pid for c in removed] == [first.pid] and [c.pid for c in added] == [first.pid, pid], timeout=3)
    assert ([c.pid for c in removed], [c.pid for c in added]) == ([first.pid], [first.pid, pid])
    assert again in collection.containers()


def test_runc_container_is_known_from_its_state_directory_by_inotify(
        require_bpf, busybox_rootfs, tmp_path):
    """The state root does not exist when the collection starts (runc makes it); with the periodic
    re-read pushed out of the test's reach, only inotify can tell the collection."""
    root = tmp_path / "state" / "runc"
    bundle = runc_bundle(busybox_rootfs, tmp_path, ["sleep", "1000"], ANNOTATIONS)
    collection = ContainerCollection.for_host(RuntimeOptions(runtimes=("runc",), state_dirs={"runc": (str(root),)}),
                                            windows=Windows(poll=600.0))
    collection.start()
    added, removed = [], []
    collection.subscribe(added.append, removed.append)
    cid = f"ig-runc-{uuid.uuid4().hex[:8]}"
    try:
        started = time.monotonic()
        runc(root, "create", cid, cwd=bundle)   # the init waits for `runc start`: nothing ran yet
        wait_until(lambda: added, "the new container to be announced", timeout=5, interval=0.002)
        print(f"runc container known {1000 * (time.monotonic() - started):.0f} ms after `runc create` began")
        state = json.loads((root / cid / "state.json").read_text())
        found = added[0]
        assert (found.id, found.runtime, found.pid) == (cid, "runc", state["init_process_pid"])
        assert (found.name, found.image) == ("web", "registry.example/shop/web:1.4")
        assert (found.k8s_namespace, found.k8s_pod, found.k8s_container) == ("shop", "web-7d4b9", "web")
        cgroup_path = state["cgroup_paths"][""]
        assert found.cgroup_id == os.stat(cgroup_path).st_ino
        assert collection.lookup("cgroup_id", found.cgroup_id) == found
        assert found.netns == os.stat(f"/proc/{found.pid}/ns/net").st_ino
        runc(root, "start", cid)
        runc(root, "delete", "--force", cid)
        assert wait_until(lambda: removed == [found], timeout=5)
        assert collection.lookup("cgroup_id", found.cgroup_id) == found   # late rows still resolve
    finally:
        subprocess.run(["runc", "--root", str(root), "delete", "--force", cid], capture_output=True)
        collection.stop()


def test_runc_container_whose_init_exited_is_removed(require_bpf, busybox_rootfs, tmp_path):
    """`runc run -d` leaves state.json behind when the process exits; the container is gone anyway."""
    root = tmp_path / "runc-root"
    bundle = runc_bundle(busybox_rootfs, tmp_path, ["sleep", "1000"], ANNOTATIONS)
    collection = ContainerCollection.for_host(RuntimeOptions(runtimes=("runc",), state_dirs={"runc": (str(root),)}))
    collection.start()
    removed = []
    collection.subscribe(lambda c: None, removed.append)
    cid = f"ig-runc-{uuid.uuid4().hex[:8]}"
    try:
        runc(root, "run", "-d", cid, cwd=bundle)
        found = wait_until(lambda: collection.containers(), timeout=5)
        assert found and found[0].id == cid
        runc(root, "kill", cid, "KILL")
        assert wait_until(lambda: removed, timeout=5) == found
        assert (root / cid / "state.json").exists() and collection.containers() == []
        assert not RuncState(cid, found[0].pid, {}, "", str(root)).alive()
    finally:
        subprocess.run(["runc", "--root", str(root), "delete", "--force", cid], capture_output=True)
        collection.stop()


def test_runtimes_not_installed_are_noted_and_no_runtime_at_all_is_one_warning(require_bpf, tmp_path, caplog):
    options = RuntimeOptions(
        sockets={"docker": str(tmp_path / "docker.sock"), "containerd": str(tmp_path / "containerd.sock"),
                 "cri-o": str(tmp_path / "crio.sock")},
        runtimes=("docker", "containerd", "cri-o"),
        state_dirs={"containerd": (str(tmp_path / "containerd-runc"),), "cri-o": (str(tmp_path / "crun"),)})
    collection = ContainerCollection.for_host(options)
    with caplog.at_level("INFO", logger="igcore.containers"):
        collection.start()
        collection.stop()
    # a runtime that is simply not installed is no warning: info, once each
    assert [w.split(":")[0] for w in collection.skipped] == ["containerd", "cri-o", "docker"]
    assert "skipped" in collection.skipped[2] and str(tmp_path / "docker.sock") in collection.skipped[2]
    infos = [r.getMessage() for r in caplog.records if r.levelname == "INFO" and "not found" in r.getMessage()]
    assert infos == collection.skipped
    # none at all: one warning, saying what it means
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == collection.warnings and len(warnings) == 1
    assert "container attribution is off" in warnings[0] and "docker: not found" in warnings[0]


def test_a_runtime_that_is_there_but_unreachable_is_a_warning(require_bpf, tmp_path, caplog):
    socket_path = tmp_path / "docker.sock"
    socket_path.touch()   # a socket file nobody listens on: docker is installed, but not reachable
    options = RuntimeOptions(sockets={"docker": str(socket_path)}, runtimes=("docker",))
    collection = ContainerCollection.for_host(options)
    with caplog.at_level("WARNING", logger="igcore.containers"):
        collection.start()
        collection.stop()
    assert collection.warnings[0].startswith(f"docker: not reachable at {socket_path}")
    assert "count as host processes" in collection.warnings[0]


def test_unknown_namespace_rows_are_held_only_while_a_container_starts(collection, docker):
    """A netns nobody claims is a host's at once, unless a container whose namespaces are not
    known yet is starting: then its rows wait (and expire as host rows if no container claims it)."""
    delivered: list[dict] = []
    enricher = Enricher(collection, "netns", host=True, sink=delivered.extend, hold_seconds=0.3)
    try:
        enricher([{"netns": 4026599999, "n": 1}])
        assert [r["n"] for r in delivered] == [1] and enricher.held == 0
        name = f"ig-coll-{uuid.uuid4().hex[:6]}"
        docker.cli("create", "--name", name, "--network", "none", "ig-test-busybox:latest", "sleep", "1000")
        docker.started.append(name)
        wait_until(lambda: any(c.name == name for c in collection.containers(include_exited=True)), timeout=5)
        enricher([{"netns": 4026599999, "n": 2}])
        assert enricher.held == 1 and [r["n"] for r in delivered] == [1]
        assert wait_until(lambda: len(delivered) == 2, timeout=5)
        assert enricher.expired == 1 and delivered[1]["runtime.containerId"] == ""
    finally:
        enricher.close()


def test_container_cgroup_no_runtime_claims_is_a_hosts(require_bpf):
    """A container-looking cgroup (here podman's layout, a runtime ig does not read) is held only
    while its runtime may still speak: one that existed when the collection started is a host's."""
    mount = Path(cgroup2_mount())
    parent = mount / f"ig-test-{uuid.uuid4().hex[:8]}"
    before = parent / f"libpod-{uuid.uuid4().hex * 2}.scope"
    after = parent / f"libpod-{uuid.uuid4().hex * 2}.scope"
    before.mkdir(parents=True)
    collection = ContainerCollection.for_host(RuntimeOptions(runtimes=("runc",), state_dirs={"runc": ("/nonexistent",)}))
    collection.start()
    try:
        assert collection.resolve("cgroup_id", before.stat().st_ino) is HOST
        after.mkdir()
        cgroup_id = after.stat().st_ino
        assert wait_until(lambda: collection.resolve("cgroup_id", cgroup_id) is PENDING, timeout=5)
    finally:
        collection.stop()
        after.rmdir()
        before.rmdir()
        parent.rmdir()


def test_short_lived_runc_container_is_still_named(require_bpf, busybox_rootfs, tmp_path):
    """`runc run` deletes the state when the process exits: read as it appears, it is kept (exited)
    with its names and cgroup, so rows read after it is gone still resolve."""
    root = tmp_path / "runc-root"
    bundle = runc_bundle(busybox_rootfs, tmp_path, ["sleep", "0.1"], ANNOTATIONS)
    collection = ContainerCollection.for_host(RuntimeOptions(runtimes=("runc",), state_dirs={"runc": (str(root),)}))
    collection.start()
    try:
        for _ in range(5):
            cid = f"ig-runc-{uuid.uuid4().hex[:8]}"
            runc(root, "run", cid, cwd=bundle)
            assert not (root / cid).exists()
            found = wait_until(lambda: next((c for c in collection.containers(include_exited=True) if c.id == cid), None), timeout=5)
            assert found is not None and (found.k8s_namespace, found.k8s_pod, found.k8s_container) == ("shop", "web-7d4b9", "web")
            assert found.cgroup_id and collection.lookup("cgroup_id", found.cgroup_id) == found
            assert found not in collection.containers()
    finally:
        collection.stop()


def test_host_rows_dropped_without_host_and_kept_with_it(collection, docker):
    name = f"ig-coll-{uuid.uuid4().hex[:6]}"
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    cid = docker.inspect(name, "{{.Id}}")
    container_cgroup = os.stat(f"{cgroup2_mount()}/docker/{cid}").st_ino
    host_cgroup = os.stat(cgroup2_mount()).st_ino
    assert wait_until(lambda: collection.lookup("cgroup_id", container_cgroup))

    def rows():
        return [{"cgroup_id": host_cgroup, "n": 1}, {"cgroup_id": container_cgroup, "n": 2}, {"cgroup_id": 0, "n": 3}]

    for host, expected in ((False, [2]), (True, [1, 2, 3])):
        delivered: list[dict] = []
        enricher = Enricher(collection, "cgroup_id", host=host, sink=delivered.extend)
        enricher(rows())
        snapshot = enricher.enrich_now(rows())
        enricher.close()
        for got in (delivered, snapshot):
            assert [r["n"] for r in got] == expected
            assert {r["runtime.containerName"] for r in got} == ({name, ""} if host else {name})
        assert (enricher.dropped_host, enricher.held, enricher.expired) == ((0 if host else 4), 0, 0)


def pod_labels(namespace: str, pod: str, container: str, kind: str) -> list[str]:
    """The labels cri-dockerd puts on a pod's sandbox (kind podsandbox) and on its containers."""
    labels = {"io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.name": pod,
              "io.kubernetes.container.name": container, "io.kubernetes.docker.type": kind}
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]


def test_pod_sandbox_is_not_a_workload_and_a_shared_namespace_gives_the_pod(collection, docker):
    """A pod as cri-dockerd makes it: a sandbox holding the namespace, containers joining it."""
    sandbox, web, proxy = (f"ig-pod-{uuid.uuid4().hex[:6]}" for _ in range(3))
    docker.run("-d", "--network", "none", *pod_labels("shop", "web-1", "POD", "podsandbox"),
               "ig-test-busybox:latest", "sleep", "1000", name=sandbox, detach=True)
    sandbox_pid = int(docker.inspect(sandbox, "{{.State.Pid}}"))
    netns = os.stat(f"/proc/{sandbox_pid}/ns/net").st_ino

    def in_pod(name: str, container: str) -> None:
        docker.run("-d", "--network", f"container:{sandbox}", *pod_labels("shop", "web-1", container, "container"),
                   "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)

    def cgroup_of(name: str) -> int:
        return os.stat(f"{cgroup2_mount()}/docker/{docker.inspect(name, '{{.Id}}')}").st_ino

    def columns_by_netns():
        found = collection.lookup("netns", netns)
        return found and {k: v for k, v in found.columns().items() if k.startswith("k8s.")}

    pod_only = {"k8s.node": "", "k8s.namespace": "shop", "k8s.pod": "web-1", "k8s.container": ""}
    # the sandbox alone: the pod; its own processes are nobody's workload
    wait_until(lambda: columns_by_netns() == pod_only, lambda: f"the expected columns (now {columns_by_netns()})")
    assert wait_until(lambda: any(c.name == sandbox and c.sandbox for c in collection.containers()))
    assert collection.lookup("cgroup_id", cgroup_of(sandbox)) is None
    assert collection.lookup("mntns", os.stat(f"/proc/{sandbox_pid}/ns/mnt").st_ino) is None
    # one container in the pod: rows of the namespace are that container's
    in_pod(web, "web")
    wait_until(lambda: columns_by_netns() == {**pod_only, "k8s.container": "web"}, lambda: f"the expected columns (now {columns_by_netns()})")
    assert collection.lookup("cgroup_id", cgroup_of(web)).k8s_container == "web"
    # two: the namespace's rows cannot say which one, so they carry the pod only
    in_pod(proxy, "proxy")
    wait_until(lambda: columns_by_netns() == pod_only, lambda: f"the expected columns (now {columns_by_netns()})")
    assert {k: v for k, v in collection.lookup("netns", netns).columns().items() if k.startswith("runtime.")} == {
        "runtime.runtimeName": "", "runtime.containerId": "", "runtime.containerName": "",
        "runtime.containerImageName": ""}
    assert collection.lookup("cgroup_id", cgroup_of(proxy)).k8s_container == "proxy"
    # the proxy stops: web is the only running one again, though the proxy's record is kept a while
    docker.cli("stop", "-t", "0", proxy)
    wait_until(lambda: columns_by_netns() == {**pod_only, "k8s.container": "web"}, lambda: f"the expected columns (now {columns_by_netns()})")
    assert any(c.name == proxy for c in collection.containers(include_exited=True))


def test_containers_sharing_a_namespace_outside_kubernetes_give_the_one_that_made_it(collection, docker):
    first, joined = (f"ig-share-{uuid.uuid4().hex[:6]}" for _ in range(2))
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=first, detach=True)
    netns = os.stat(f"/proc/{docker.inspect(first, '{{.State.Pid}}')}/ns/net").st_ino
    assert wait_until(lambda: collection.lookup("netns", netns)).name == first
    docker.run("-d", "--network", f"container:{first}", "ig-test-busybox:latest", "sleep", "1000",
               name=joined, detach=True)
    assert wait_until(lambda: any(c.name == joined and c.netns == netns for c in collection.containers()))
    assert collection.lookup("netns", netns).name == first


@pytest.mark.parametrize("annotations, sandbox", [
    ({"io.kubernetes.cri.container-type": "sandbox"}, True),        # containerd's CRI
    ({"io.kubernetes.cri.container-type": "container"}, False),
    ({"io.kubernetes.cri-o.ContainerType": "sandbox"}, True),       # cri-o
    ({"io.kubernetes.docker.type": "podsandbox"}, True),            # cri-dockerd's label
    ({"io.kubernetes.docker.type": "container"}, False),
    ({}, False),
])
def test_sandbox_recognised_by_each_runtimes_marker(annotations, sandbox):
    assert is_sandbox(annotations) is sandbox


def test_containerd_pod_sandbox_and_container_from_their_oci_annotations(require_bpf, busybox_rootfs, tmp_path):
    """A pod as containerd's CRI makes it, with runc under containerd's state layout: the sandbox and
    a container joining its network namespace, each with the annotations CRI writes."""
    root = tmp_path / "containerd-runc"
    root.mkdir()   # what containerd makes at its start; its namespace's directory comes with the first pod
    pod = {"io.kubernetes.cri.sandbox-name": "web-7d4b9", "io.kubernetes.cri.sandbox-namespace": "shop"}
    collection = ContainerCollection.for_host(RuntimeOptions(runtimes=("containerd",), state_dirs={"containerd": (str(root),)}))
    collection.start()
    ids = [f"ig-cri-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        (tmp_path / "sandbox").mkdir()
        bundle = runc_bundle(busybox_rootfs, tmp_path / "sandbox", ["sleep", "1000"],
                             {**pod, "io.kubernetes.cri.container-type": "sandbox"})
        runc(root / "k8s.io", "run", "-d", ids[0], cwd=bundle)
        sandbox = wait_until(lambda: collection.containers(), timeout=5)[0]
        assert (sandbox.runtime, sandbox.sandbox, sandbox.k8s_pod) == ("containerd", True, "web-7d4b9")
        assert collection.lookup("mntns", sandbox.mntns) is None   # the pause process is nobody's workload
        (tmp_path / "web").mkdir()
        bundle = runc_bundle(busybox_rootfs, tmp_path / "web", ["sleep", "1000"],
                             {**pod, "io.kubernetes.cri.container-type": "container",
                              "io.kubernetes.cri.container-name": "web"})
        spec = json.loads((bundle / "config.json").read_text())
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/proc/{sandbox.pid}/ns/net"
        (bundle / "config.json").write_text(json.dumps(spec))
        runc(root / "k8s.io", "run", "-d", ids[1], cwd=bundle)
        web = wait_until(lambda: next((c for c in collection.containers() if c.id == ids[1]), None), timeout=5)
        assert web.netns == sandbox.netns and not web.sandbox
        assert collection.lookup("mntns", web.mntns) == web
        columns = collection.lookup("netns", web.netns).columns()
        assert (columns["k8s.namespace"], columns["k8s.pod"], columns["k8s.container"]) == ("shop", "web-7d4b9", "web")
    finally:
        for cid in ids:
            subprocess.run(["runc", "--root", str(root / "k8s.io"), "delete", "--force", cid], capture_output=True)
        collection.stop()
