"""Metrics by workload end to end: a real `ig prometheus`, real execs in docker containers labelled
as pods' containers, and the pods' owners and labels from the pod watch of a local endpoint that
speaks the API server's protocol (a contract, not a cluster: docs/config.md, Pod owners and labels),
or, on a host, from a cri-dockerd-labelled sandbox.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from tests.fake_apiserver import FakeApiServer
from tests.fake_pods import FakePods
from tests.fixtures.docker import IMAGE
from tests.fixtures.igrun import IG
from tests.fixtures.waiting import wait_until

NODE = "node-e2e"

BY_OWNER = """
metrics_name: workloads
metrics:
  - name: execs_by_owner
    type: counter
    category: trace
    gadget: exec
    selector: ["comm:cat", "k8s.namespace:~^{tag}-"]
    labels: [k8s.owner.kind, k8s.owner.name]
  - name: execs_by_pod
    type: counter
    category: trace
    gadget: exec
    selector: ["comm:cat", "k8s.namespace:~^{tag}-"]
    labels: [k8s.namespace, k8s.pod, k8s.owner.name, k8s.podLabels.app]
"""


@pytest.fixture
def api():
    server = FakeApiServer()
    yield server
    server.close()


class Pods:
    """Pods on the fake API server, each with a docker container labelled as the pod's container
    (the docker labels kubelet's CRI shims set: io.kubernetes.pod.namespace and .name)."""

    def __init__(self, cluster: FakePods, docker, tag: str) -> None:
        self.cluster, self.docker, self.tag = cluster, docker, tag
        self.containers: dict[str, str] = {}

    def namespace(self, short: str) -> str:
        return f"{self.tag}-{short}"

    def start(self, short_ns: str, pod: str, labels: dict[str, str], owner=None) -> None:
        ns = self.namespace(short_ns)
        self.cluster.add(ns, pod, labels, owner)
        name = f"ig-test-{self.tag}-{pod}"
        self.docker.run("-d", "--network", "none", "--label", f"io.kubernetes.pod.namespace={ns}",
                        "--label", f"io.kubernetes.pod.name={pod}", "--label", "io.kubernetes.container.name=main",
                        IMAGE, "sleep", "3600", name=name, detach=True)
        self.containers[pod] = name

    def execs(self, pod: str, count: int) -> None:
        self.docker.cli("exec", self.containers[pod], "sh", "-c", f"for i in $(seq 1 {count}); do cat /dev/null; done")

    def stop(self, short_ns: str, pod: str) -> None:
        self.cluster.delete(self.namespace(short_ns), pod)
        self.docker.rm(self.containers.pop(pod))


def _series(ig, name: str) -> dict[frozenset, float]:
    return {labels: value for (n, labels), value in ig.samples().items() if n == name}


def _by_owner(ig) -> dict[tuple[str, str], float]:
    return {(dict(labels)["k8s_owner_kind"], dict(labels)["k8s_owner_name"]): value
            for labels, value in _series(ig, "execs_by_owner_total").items()}


@pytest.mark.parametrize("path", ["kernel", "user"])
def test_counts_by_owner_across_a_rollout(path, api, docker, run_ig, require_bpf, tmp_path):
    """Counted in the gadget's BPF map (owners resolved from the container key at scrape) or in
    user space (--no-kernel-aggregation): the same numbers."""
    tag = f"w{uuid.uuid4().hex[:6]}"
    cluster = FakePods(api, NODE)
    cluster.owner("ReplicaSet", f"{tag}-shop", "web-7d9", ("Deployment", "web"))
    cluster.owner("ReplicaSet", f"{tag}-shop", "web-5f4", ("Deployment", "web"))
    cluster.owner("Job", f"{tag}-batch", "nightly-2901", ("CronJob", "nightly"))
    pods = Pods(cluster, docker, tag)
    pods.start("shop", "web-7d9-a", {"app": "web"}, ("ReplicaSet", "web-7d9"))
    pods.start("shop", "web-7d9-b", {"app": "web"}, ("ReplicaSet", "web-7d9"))
    pods.start("batch", "nightly-2901-x", {"app": "nightly"}, ("Job", "nightly-2901"))
    pods.start("system", "proxy-q", {"app": "proxy"}, ("DaemonSet", "proxy"))
    pods.start("default", "bare", {"app": "bare"})
    ig = run_ig(BY_OWNER.replace("{tag}", tag), "--kubeconfig", str(cluster.kubeconfig(tmp_path / "kubeconfig")),
                "--series-grace", "0.5", "--series-sweep-period", "0.2",
                *(["--no-kernel-aggregation"] if path == "user" else []), env={"NODE_NAME": NODE})
    assert ig.value("ig_metric_aggregation", metric="execs_by_owner", path=path) == 1
    wait_until(lambda: ig.value("ig_k8s_pods", node=NODE) == 5, "the pods of the list", 30)

    for pod, count in (("web-7d9-a", 3), ("web-7d9-b", 4), ("nightly-2901-x", 5), ("proxy-q", 6), ("bare", 7)):
        pods.execs(pod, count)
    ig.wait_for("execs_by_owner_total", 7, k8s_owner_kind="", k8s_owner_name="")
    assert _by_owner(ig) == {("Deployment", "web"): 7, ("CronJob", "nightly"): 5, ("DaemonSet", "proxy"): 6,
                             ("", ""): 7}, ig.text()
    by_pod = _series(ig, "execs_by_pod_total")
    assert by_pod[frozenset({"k8s_namespace": f"{tag}-shop", "k8s_pod": "web-7d9-a", "k8s_owner_name": "web",
                             "k8s_podLabels_app": "web"}.items())] == 3, ig.text()
    assert len(by_pod) == 5

    # a rollout: the Deployment's pods are replaced by those of a new ReplicaSet
    pods.start("shop", "web-5f4-c", {"app": "web"}, ("ReplicaSet", "web-5f4"))
    pods.start("shop", "web-5f4-d", {"app": "web"}, ("ReplicaSet", "web-5f4"))
    pods.stop("shop", "web-7d9-a")
    pods.stop("shop", "web-7d9-b")
    wait_until(lambda: ig.value("ig_k8s_pods", node=NODE) == 5, "the pods after the rollout", 30)
    pods.execs("web-5f4-c", 2)
    pods.execs("web-5f4-d", 3)
    ig.wait_for("execs_by_owner_total", 12, k8s_owner_kind="Deployment", k8s_owner_name="web")
    # the owner's series kept counting, and a metric labelled by owner did not grow with the pods
    assert _by_owner(ig) == {("Deployment", "web"): 12, ("CronJob", "nightly"): 5, ("DaemonSet", "proxy"): 6,
                             ("", ""): 7}, ig.text()
    # the replaced pods' series leave (--series-grace); the owner stays while a container of it runs
    wait_until(lambda: len(_series(ig, "execs_by_pod_total")) == 5, "the replaced pods' series to leave", 30)
    assert _by_owner(ig)[("Deployment", "web")] == 12
    pods.stop("shop", "web-5f4-c")
    pods.stop("shop", "web-5f4-d")
    wait_until(lambda: ("Deployment", "web") not in _by_owner(ig), "the owner's series once no pod of it runs", 30)
    assert ig.value("ig_k8s_watch_restarts_total", reason="forbidden") == 0
    assert ig.value("ig_k8s_watch_seconds_since_last_event") < 60


BY_APP = """
metrics_name: host
metrics:
  - name: execs_by_app
    type: counter
    category: trace
    gadget: exec
    selector: ["comm:cat", "k8s.namespace:{ns}"]
    labels: [k8s.podLabels.app, k8s.owner.name]
  - name: probes_by_app
    type: counter
    category: trace
    gadget: exec
    selector: ["comm:true", "k8s.namespace:{ns}"]
    labels: [k8s.podLabels.app]
"""


def cri_dockerd_pod(docker, ns: str, pod: str) -> str:
    """A pod as cri-dockerd makes it: a sandbox carrying the pod's labels (and its annotations as
    annotation.KEY) beside kubelet's io.kubernetes.pod.* labels, and a container in its network
    namespace; the container's name."""
    uid = f"uid-{pod}"
    kubelet = ["--label", f"io.kubernetes.pod.namespace={ns}", "--label", f"io.kubernetes.pod.name={pod}",
               "--label", f"io.kubernetes.pod.uid={uid}"]
    sandbox = f"k8s_POD_{pod}_{ns}_{uid}_0"
    docker.run("-d", "--network", "none", *kubelet, "--label", "io.kubernetes.docker.type=podsandbox",
               "--label", "app=web", "--label", "team=payments",
               "--label", "annotation.kubernetes.io/config.source=api", IMAGE, "sleep", "3600",
               name=sandbox, detach=True)
    sandbox_id = docker.inspect(sandbox, "{{.Id}}")
    main = f"k8s_main_{pod}_{ns}_{uid}_0"
    docker.run("-d", "--network", f"container:{sandbox}", *kubelet, "--label", "io.kubernetes.docker.type=container",
               "--label", "io.kubernetes.container.name=main", "--label", f"io.kubernetes.sandbox.id={sandbox_id}",
               IMAGE, "sleep", "3600", name=main, detach=True)
    return main


def test_host_pod_labels_from_a_cri_dockerd_sandbox(docker, run_ig, require_bpf):
    """No API server: the pod's labels come from its sandbox's docker labels, as cri-dockerd sets them."""
    tag = uuid.uuid4().hex[:6]
    ns, pod = f"h{tag}", f"web-{tag}"
    ig = run_ig(BY_APP.replace("{ns}", ns))
    assert "no API server to watch this node's pods" in ig.output()
    main = cri_dockerd_pod(docker, ns, pod)
    # ig has seen the sandbox once a probe's exec carries its label (it could come after the container)
    wait_until(lambda: docker.cli("exec", main, "/bin/true") and ig.value("probes_by_app_total", k8s_podLabels_app="web"),
               "an exec labelled with the sandbox's pod label", 30)
    docker.cli("exec", main, "sh", "-c", "for i in $(seq 1 9); do cat /dev/null; done")
    assert ig.wait_for("execs_by_app_total", 9, k8s_podLabels_app="web") == 9, ig.text()
    assert 'execs_by_app_total{k8s_owner_name="",k8s_podLabels_app="web"} 9.0' in ig.text()


def test_trace_shows_the_pod_columns(docker, live_trace):
    """`ig trace -o json` rows carry every column, the pod's labels and (empty, on a host) owner too."""
    tag = uuid.uuid4().hex[:6]
    ns, pod = f"t{tag}", f"web-{tag}"
    trace = live_trace("exec")
    main = cri_dockerd_pod(docker, ns, pod)
    row = trace.until(lambda r: r.get("k8s.pod") == pod and r.get("comm") == "true" and r.get("k8s.podLabels"),
                      lambda: docker.cli("exec", main, "/bin/true"))
    # docker adds the image's own labels to a container's (the test image has one; pause images none)
    labels = dict(pair.split("=", 1) for pair in row["k8s.podLabels"].split(","))
    assert {"app": "web", "team": "payments"}.items() <= labels.items() and "io.kubernetes.pod.name" not in labels
    assert not any(key.startswith("annotation.") for key in labels)
    assert row["k8s.owner.kind"] == row["k8s.owner.name"] == ""


@pytest.mark.parametrize("text, node, words", [
    ("garbage: [\n", NODE, "cannot use --kubeconfig"),
    ("[1, 2]\n", NODE, "cannot use --kubeconfig"),
    (None, "", "needs this node's name in the NODE_NAME environment variable"),
], ids=["not-yaml", "not-a-kubeconfig", "no-node-name"])
def test_kubeconfig_errors_are_one_line(text, node, words, api, tmp_path):
    path = FakePods(api, NODE).kubeconfig(tmp_path / "kubeconfig")
    if text is not None:
        path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "NODE_NAME"} | ({"NODE_NAME": node} if node else {})
    result = subprocess.run([IG, "prometheus", "--kubeconfig", str(path), "--config", BY_APP.replace("{ns}", "x")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert words in line and "Traceback" not in result.stderr
