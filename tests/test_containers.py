"""The container registry and enricher on real containers, cgroups and runc bundles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from igcore.containers import ContainerRegistry, Enricher, RuntimeOptions
from igcore.containers.cgroups import cgroup2_mount

ANNOTATIONS = {
    "io.kubernetes.cri.container-name": "web",
    "io.kubernetes.cri.sandbox-name": "web-7d4b9",
    "io.kubernetes.cri.sandbox-namespace": "shop",
}


@pytest.fixture
def registry(require_bpf):
    reg = ContainerRegistry(RuntimeOptions())
    reg.start()
    yield reg
    reg.stop()


def wait_until(check, timeout=10.0, step=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    return check()


def test_new_docker_container_is_known_quickly_with_its_metadata(registry, docker):
    name = f"ig-reg-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    cid = docker.inspect(name, "{{.Id}}")
    pid = int(docker.inspect(name, "{{.State.Pid}}"))
    netns = os.stat(f"/proc/{pid}/ns/net").st_ino
    found = wait_until(lambda: registry.lookup("netns", netns))
    print(f"container known {1000 * (time.monotonic() - started):.0f} ms after `docker run -d` began")
    assert found is not None
    cgroup_id = os.stat(f"{cgroup2_mount()}/docker/{cid}").st_ino
    assert registry.lookup("cgroup_id", cgroup_id) == found
    assert registry.lookup("mntns", os.stat(f"/proc/{pid}/ns/mnt").st_ino) == found
    assert (found.id, found.name, found.runtime, found.image) == (cid, name, "docker", "ig-test-busybox:latest")
    columns = found.columns()
    assert columns["k8s.container"] == name and columns["k8s.namespace"] == "" and columns["k8s.pod"] == ""
    assert columns["runtime.containerId"] == cid and columns["runtime.runtimeName"] == "docker"


def test_docker_kubernetes_labels_become_k8s_names(registry, docker):
    name = f"ig-reg-{uuid.uuid4().hex[:6]}"
    docker.run("-d", "--network", "none", "--label", "io.kubernetes.pod.namespace=prod",
               "--label", "io.kubernetes.pod.name=api-1", "--label", "io.kubernetes.container.name=api",
               "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    pid = int(docker.inspect(name, "{{.State.Pid}}"))
    found = wait_until(lambda: registry.lookup("netns", os.stat(f"/proc/{pid}/ns/net").st_ino))
    assert (found.k8s_namespace, found.k8s_pod, found.k8s_container) == ("prod", "api-1", "api")


def test_short_lived_container_still_resolves_after_it_is_gone(registry, docker):
    name = f"ig-reg-{uuid.uuid4().hex[:6]}"
    docker.run("--rm", "--network", "none", "ig-test-busybox:latest", "true", name=name)
    # the container and its cgroup are gone; what the kernel and docker told us is kept a while
    assert wait_until(lambda: any(c.name == name for c in registry._containers.values()), timeout=5)
    found = next(c for c in registry._containers.values() if c.name == name)
    assert found.cgroup_id and registry.lookup("cgroup_id", found.cgroup_id) == found


def test_enricher_holds_rows_until_the_container_is_known(require_bpf, tmp_path):
    """A row from a container's cgroup arrives before any runtime knows the container: it is held,
    then labelled once the runtime's state appears; host rows pass at once with --host."""
    mount = cgroup2_mount()
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    cgroup_dir = Path(mount, f"ig-test-{cid[:8]}", f"docker-{cid}.scope")
    root = tmp_path / "runc-root"
    root.mkdir()
    registry = ContainerRegistry(RuntimeOptions(runtimes=("runc",), state_dirs={"runc": (str(root),)}))
    registry.start()
    delivered: list[dict] = []
    enricher = Enricher(registry, "cgroup_id", host=True, sink=delivered.extend, hold_seconds=10)
    try:
        cgroup_dir.mkdir(parents=True)
        cgroup_id = cgroup_dir.stat().st_ino
        wait_until(lambda: cgroup_id in registry._cgroup_paths, timeout=5)
        host_cgroup = Path(mount).stat().st_ino
        enricher([{"cgroup_id": cgroup_id, "n": 1}, {"cgroup_id": host_cgroup, "n": 2}])
        assert [r["n"] for r in delivered] == [2] and delivered[0]["k8s.container"] == ""
        assert enricher.held == 1
        time.sleep(0.3)
        state_dir = root / cid
        state_dir.mkdir()
        (state_dir / "state.json").write_text(json.dumps({
            "id": cid, "init_process_pid": 0, "cgroup_paths": {"": str(cgroup_dir)},
            "config": {"labels": [f"{k}={v}" for k, v in ANNOTATIONS.items()] + ["bundle=/nowhere"]},
        }))
        assert wait_until(lambda: len(delivered) == 2, timeout=5)
        row = delivered[1]
        assert (row["n"], row["k8s.namespace"], row["k8s.pod"], row["k8s.container"]) == (1, "shop", "web-7d4b9", "web")
        assert row["runtime.runtimeName"] == "runc" and enricher.expired == 0
    finally:
        enricher.close()
        registry.stop()
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


def test_plain_runc_container_with_containerd_annotations(run_ig, docker, tmp_path):
    shutil.which("runc") or pytest.fail("runc is not installed")
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    name = f"ig-export-{uuid.uuid4().hex[:6]}"
    docker.cli("create", "--name", name, "ig-test-busybox:latest")
    docker.started.append(name)
    export = tmp_path / "rootfs.tar"
    docker.cli("export", "-o", str(export), name)
    with tarfile.open(export) as tar:
        tar.extractall(bundle / "rootfs")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["sh", "-c", "for i in 1 2 3; do cat /dev/null; done"]
    spec["root"] = {"path": "rootfs", "readonly": False}
    spec["annotations"] = ANNOTATIONS
    (bundle / "config.json").write_text(json.dumps(spec))

    ig = run_ig(RUNC_COUNTER)
    cid = f"ig-runc-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(["runc", "run", cid], cwd=bundle, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    value = ig.wait_for("executed_processes_total", 3, k8s_namespace="shop", k8s_pod="web-7d4b9", k8s_container="web")
    assert value == 3, ig.text()
    assert ig.value("executed_processes_total", k8s_container="web", runtime_runtimeName="runc") == 3


def test_host_network_container_does_not_claim_the_hosts_namespace(registry, docker):
    name = f"ig-reg-{uuid.uuid4().hex[:6]}"
    docker.run("-d", "--network", "host", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    pid = int(docker.inspect(name, "{{.State.Pid}}"))
    found = wait_until(lambda: next((c for c in registry.containers() if c.name == name), None))
    assert found is not None and found.netns == os.stat("/proc/self/ns/net").st_ino
    assert registry.lookup("netns", found.netns) is None          # host rows stay host rows
    assert registry.lookup("cgroup_id", found.cgroup_id) == found  # its own processes are still its
    assert pid > 0
