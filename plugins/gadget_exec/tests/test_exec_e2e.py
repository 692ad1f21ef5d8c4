"""trace exec end to end: real execs counted by a real `ig prometheus --host`, read as Prometheus would."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

NOBODY = 65534


@pytest.fixture
def binary():
    folder = Path(tempfile.mkdtemp(prefix="ig-exec-e2e-"))
    folder.chmod(0o755)  # nobody must be able to run it
    path = folder / ("ige" + uuid.uuid4().hex[:10])
    shutil.copy("/bin/true", path)
    path.chmod(0o755)
    yield path
    shutil.rmtree(folder)


def test_counters_on_comm_retval_and_uid(require_bpf, run_ig, binary):
    name = binary.name
    ig = run_ig(f"""
metrics_name: exec_e2e
metrics:
  - name: executed_processes
    type: counter
    category: trace
    gadget: exec
    selector: ["comm:{name}"]
    labels: [comm]
  - name: failed_execs
    type: counter
    category: trace
    gadget: exec
    selector: ["ret:!0", "args:~{name}"]
    labels: [retval]
  - name: nonroot_execs
    type: counter
    category: trace
    gadget: exec
    selector: ["uid:>=1", "args:~{name}"]
    labels: [uid, gid]
""", "--host")
    ok, failing, as_nobody = 12, 3, 4
    for i in range(ok):
        subprocess.run([str(binary), str(i)], check=True)
    missing = binary.with_name(f"missing-{name}")
    for _ in range(failing):
        with pytest.raises(FileNotFoundError):
            subprocess.run([str(missing)])
    setpriv = shutil.which("setpriv")  # by name, Python would try (and fail) an exec per PATH entry
    for _ in range(as_nobody):
        subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(binary)], check=True)

    assert ig.wait_for("executed_processes_total", ok + as_nobody, comm=name) == ok + as_nobody
    assert ig.wait_for("failed_execs_total", failing) == failing
    assert ig.value("failed_execs_total", retval="-2") == failing
    assert ig.wait_for("nonroot_execs_total", as_nobody) == as_nobody
    assert ig.value("nonroot_execs_total", uid=str(NOBODY), gid=str(NOBODY)) == as_nobody
    assert ig.value("ig_events_lost_total", gadget="exec") in (None, 0)


def test_container_execs_without_host(require_bpf, run_ig, docker, binary):
    """Without --host only container execs count, labelled with their container and failures included."""
    name = "ig-exec-" + binary.name
    ig = run_ig("""
metrics_name: exec_containers
metrics:
  - name: executed_processes
    type: counter
    category: trace
    gadget: exec
    labels: [k8s.container, comm, retval]
""")
    subprocess.run([str(binary)], check=True)  # a host exec: not counted
    docker.run("--rm", "--network", "none", "ig-test-busybox:latest", "sh", "-c",
               "for i in 1 2 3 4 5 6 7; do cat /dev/null; done; /nonexistent 2>/dev/null; true", name=name)
    assert ig.wait_for("executed_processes_total", 7, k8s_container=name, comm="cat") == 7
    assert ig.value("executed_processes_total", k8s_container=name, retval="-2") == 1
    assert ig.value("executed_processes_total", comm=binary.name) is None
