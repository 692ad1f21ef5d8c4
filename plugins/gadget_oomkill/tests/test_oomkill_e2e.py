"""trace oomkill end to end: OOM kills in containers counted by a real `ig prometheus`, read over HTTP."""

from __future__ import annotations

from oom_container import run_oom


def test_oom_kill_counted_once_with_the_victims_container(run_ig, docker):
    """One OOM kill in container A, then one in container B as the sentinel: once B's is counted
    (rows of one gadget arrive in order), A's count is final."""
    ig = run_ig("""
metrics_name: oomkill_e2e
metrics:
  - name: oom_kills
    type: counter
    category: trace
    gadget: oomkill
    selector: ["kcomm:dd"]
    labels: [k8s.container, runtime.containerImageName, kcomm, tcomm]
""")
    first = run_oom(docker, "ig-oom-a")
    sentinel = run_oom(docker, "ig-oom-b")
    assert ig.wait_for("oom_kills_total", 1, k8s_container=sentinel) == 1
    assert ig.value("oom_kills_total", k8s_container=first, runtime_containerImageName="ig-test-busybox:latest",
                    kcomm="dd", tcomm="dd") == 1
    assert ig.value("oom_kills_total", k8s_container="") is None
