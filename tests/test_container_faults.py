"""The container collection's loops survive their own errors, through the real code paths: a malformed
state.json in a watched state directory, a docker event stream cut mid-chunk (by a proxy in front of
the real dockerd), a failing delivery in the enricher's retry loop. Each failure is counted in
ig_loop_errors_total, and what comes after it is still attributed exactly. The collection can also
be stopped and started again."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from igcore.containers import ContainerCollection, Enricher, RuntimeOptions
from igcore.containers.cgroups import cgroup2_mount
from igcore.health import loop_errors
from tests.fixtures.docker import SOCKET
from tests.fixtures.unix_proxy import CuttingProxy
from tests.fixtures.runc import ANNOTATIONS, runc, runc_bundle
from tests.fixtures.waiting import wait_until


def errors_of(component: str) -> int:
    return loop_errors.counts().get((component, ""), 0)


def test_malformed_state_json_is_counted_once_and_later_containers_are_still_found(
        require_bpf, busybox_rootfs, tmp_path):
    root = tmp_path / "runc-root"
    root.mkdir()
    collection = ContainerCollection.for_host(RuntimeOptions(runtimes=("runc",), state_dirs={"runc": (str(root),)}))
    collection.start()
    before = errors_of("containers.state-dirs")
    cid = f"ig-runc-{uuid.uuid4().hex[:8]}"
    try:
        (root / "broken").mkdir()
        # written whole and renamed into place, as runc writes its state: one version of the file
        (root / "broken" / "state.tmp").write_text(json.dumps({"id": "broken", "init_process_pid": "not-a-pid"}))
        (root / "broken" / "state.tmp").rename(root / "broken" / "state.json")
        assert wait_until(lambda: errors_of("containers.state-dirs") == before + 1, timeout=5)
        bundle = runc_bundle(busybox_rootfs, tmp_path, ["sleep", "1000"], ANNOTATIONS)
        runc(root, "run", "-d", cid, cwd=bundle)
        found = wait_until(lambda: next((c for c in collection.containers() if c.id == cid), None), timeout=5)
        assert found is not None and (found.k8s_pod, found.k8s_container) == ("web-7d4b9", "web")
        assert collection.lookup("cgroup_id", found.cgroup_id) == found
        # the bad file was listed again on every refresh since, and counted once (one version of it)
        assert errors_of("containers.state-dirs") == before + 1
        assert collection._thread.is_alive()
    finally:
        subprocess.run(["runc", "--root", str(root), "delete", "--force", cid], capture_output=True)
        collection.stop()


def test_docker_event_stream_cut_mid_chunk_reconnects_and_replays(require_bpf, docker, tmp_path, caplog):
    proxy = CuttingProxy(str(tmp_path / "docker.sock"), SOCKET)
    # only the Engine API may tell: no state directory is read
    options = RuntimeOptions(runtimes=("docker",), sockets={"docker": proxy.listen_path}, state_dirs={"docker": ()})
    collection = ContainerCollection.for_host(options)
    collection.start()
    before = errors_of("containers.docker-events")
    during, after = (f"ig-cut-{uuid.uuid4().hex[:6]}" for _ in range(2))
    try:
        with caplog.at_level(logging.ERROR, logger="igcore.health"):
            proxy.cut_stream_mid_chunk()
            docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=during, detach=True)
            assert proxy.cut_done.wait(30), "no event came through the proxy"
            assert wait_until(lambda: errors_of("containers.docker-events") == before + 1, timeout=10)
            docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=after, detach=True)
            for name in (during, after):   # the cut event is replayed; the later one comes as usual
                pid = int(docker.inspect(name, "{{.State.Pid}}"))
                netns = os.stat(f"/proc/{pid}/ns/net").st_ino
                found = wait_until(lambda: collection.lookup("netns", netns), timeout=10)
                assert found is not None and found.name == name and found.runtime == "docker"
        assert errors_of("containers.docker-events") == before + 1
        if before == 0:   # the first error of this loop is logged (later ones at most once a minute)
            assert any("IncompleteRead" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        collection.stop()
        proxy.close()


def state_json(cid: str, pid: int, cgroup_dir: Path) -> str:
    start = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return json.dumps({"id": cid, "init_process_pid": pid, "init_process_start": start,
                       "cgroup_paths": {"": str(cgroup_dir)},
                       "config": {"labels": [f"{k}={v}" for k, v in ANNOTATIONS.items()]}})


def test_enricher_retry_loop_survives_a_failing_delivery(require_bpf, tmp_path):
    """Rows held for a container not known yet: the first delivery from the retry loop fails; rows
    held after it still get their container's labels (not expired into host rows)."""
    mount = cgroup2_mount()
    parent = Path(mount, f"ig-test-{uuid.uuid4().hex[:8]}")
    root = tmp_path / "runc-root"
    root.mkdir()
    collection = ContainerCollection.for_host(RuntimeOptions(runtimes=("runc",), state_dirs={"runc": (str(root),)}))
    collection.start()
    delivered: list[dict] = []
    failures = []

    def sink(rows):
        if not failures:
            failures.append(rows)
            raise RuntimeError("downstream failed")
        delivered.extend(rows)

    gadget = f"faulty-{uuid.uuid4().hex[:6]}"
    enricher = Enricher(collection, "cgroup_id", host=True, sink=sink, hold_seconds=10, gadget=gadget)
    inits = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    cids = [uuid.uuid4().hex + uuid.uuid4().hex for _ in range(2)]
    dirs = [parent / f"docker-{cid}.scope" for cid in cids]
    try:
        for n, (cid, cgroup_dir, init) in enumerate(zip(cids, dirs, inits), start=1):
            cgroup_dir.mkdir(parents=True)
            cgroup_id = cgroup_dir.stat().st_ino
            assert wait_until(lambda: collection.cgroups.path_of(cgroup_id) is not None, timeout=5)
            enricher([{"cgroup_id": cgroup_id, "n": n}])
            assert enricher.held == n
            (cgroup_dir / "cgroup.procs").write_text(str(init.pid))
            (root / cid).mkdir()
            (root / cid / "state.json").write_text(state_json(cid, init.pid, cgroup_dir))
            if n == 1:
                assert wait_until(lambda: loop_errors.counts().get(("enricher.retry", gadget)) == 1, timeout=5)
        assert wait_until(lambda: len(delivered) == 1, timeout=5)
        assert [r["n"] for r in failures[0]] == [1]
        assert (delivered[0]["n"], delivered[0]["runtime.containerId"], delivered[0]["k8s.container"]) == (2, cids[1], "web")
        assert enricher.expired == 0 and enricher._timer.is_alive()
    finally:
        enricher.close()
        collection.stop()
        for init in inits:
            init.kill()
            init.wait()
        for cgroup_dir in dirs:
            if cgroup_dir.exists():
                cgroup_dir.rmdir()
        if parent.exists():
            parent.rmdir()


def test_collection_can_be_stopped_and_started_again(require_bpf, docker):
    before = set(threading.enumerate())
    collection = ContainerCollection.for_host(RuntimeOptions(runtimes=("docker",)))
    collection.start()
    collection.stop()
    collection.start()
    name = f"ig-restart-{uuid.uuid4().hex[:6]}"
    try:
        docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
        pid = int(docker.inspect(name, "{{.State.Pid}}"))
        found = wait_until(lambda: collection.lookup("netns", os.stat(f"/proc/{pid}/ns/net").st_ino), timeout=10)
        assert found is not None and found.name == name
        readers = [t for t in threading.enumerate() if t.name == "ig-docker-events" and t not in before]
        assert len(readers) == 1   # the first start's reader ended with its stop
    finally:
        collection.stop()


@pytest.fixture(autouse=True)
def _no_leftover_threads():
    """The collection's threads started by a test end with its stop()."""
    names = ("ig-containers-refresh", "ig-docker-events", "ig-state-dirs")
    before = set(threading.enumerate())

    def leftover():
        return [t for t in threading.enumerate() if t.name in names and t not in before]

    yield
    assert wait_until(lambda: not leftover(), timeout=10), leftover()
