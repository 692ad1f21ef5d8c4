"""Container enrichment end to end: real containers, the exec gadget, a real `ig prometheus`."""

from __future__ import annotations

import subprocess
import uuid

CAT_COUNTER = """
metrics_name: guide
metrics:
  - name: executed_processes
    type: counter
    category: trace
    gadget: exec
    labels: [k8s.namespace, k8s.pod, k8s.container]
    selector: ["comm:cat"]
"""


def test_guide_docker_example_short_lived_container(run_ig, docker, require_bpf):
    """The user guide's example: 100 cats in a container that lives well under a second."""
    ig = run_ig(CAT_COUNTER)
    name = f"mycontainer-{uuid.uuid4().hex[:6]}"   # unique: suites may run side by side
    docker.run("--rm", "--network", "none", "ig-test-busybox:latest", "sh", "-c",
               "for i in $(seq 1 100); do cat /dev/null; done", name=name)
    value = ig.wait_for("executed_processes_total", 100, k8s_container=name, k8s_namespace="", k8s_pod="")
    assert value == 100, ig.text()
    line = f'executed_processes_total{{k8s_container="{name}",k8s_namespace="",k8s_pod=""}} 100.0'
    assert line in ig.text()


def test_host_executions_counted_only_with_host(run_ig, require_bpf, tmp_path):
    probe = tmp_path / f"ighost{uuid.uuid4().hex[:6]}"
    probe.symlink_to("/bin/true")
    config = CAT_COUNTER.replace('selector: ["comm:cat"]', f'selector: ["comm:{probe.name}"]')
    # the metric is computed in the kernel; the same in user space, where dropped rows are counted
    without, with_host = run_ig(config), run_ig(config, "--host")
    without_in_user_space = run_ig(config, "--no-kernel-aggregation")
    for _ in range(5):
        subprocess.run([str(probe)], check=True)
    assert with_host.wait_for("executed_processes_total", 5, k8s_container="") == 5
    assert without.value("ig_metric_aggregation", metric="executed_processes", path="kernel") == 1
    without_in_user_space.settle()   # this instance, too, has read every exec of the probe before we check
    assert without_in_user_space.value("executed_processes_total") is None
    assert without_in_user_space.value("ig_events_dropped_total", category="trace", gadget="exec", reason="host") >= 5
    # the kernel counted the probe's execs under its (host) cgroup, which the other instance has
    # resolved to the host already; the read drops them
    assert without.value("ig_kernel_map_entries", gadget="exec") >= 1
    assert without.value("executed_processes_total") is None
