"""The node agent in its image, run as the DaemonSet's pod spec says.

The image is built from the real Dockerfile (tests/k8s_image.py). The agent container gets the
mounts, capabilities (all dropped but those added), read-only root with tmpfs where the emptyDirs
are, environment and arguments of the rendered pod spec, mapped to docker flags (privileges: what
this machine's docker allows, see tests/k8s_image.py). A container labelled the
way cri-dockerd labels a pod's container runs the guide's loop; the agent reports its 100 `cat`
under the pod's names, with k8s_node from NODE_NAME. Its config arrives by a kubelet-style swap of
the mounted directory after it started, as a `kubectl gadget prometheus` would deliver it.
"""

from __future__ import annotations

import time
import uuid

import pytest

from igcore.kubectl.manifests import Values
from tests.fixtures.igrun import IgProcess, free_port
from tests.k8s_image import build_image, docker_run_options, image_size_mb
from tests.k8s_objects import CAT_BY_POD_CONFIG, pod_template
from tests.kubelet_volume import ConfigMapVolume

# The first test also waits for the module's image build (pip builds ig and every plugin inside it):
# minutes on a busy machine. The build has its own time limit (tests/k8s_image.py); pytest's 300 s
# per test must not cut it short.
pytestmark = pytest.mark.timeout(1500)

GUIDE_LOOP = "for i in $(seq 1 100); do cat /dev/null; done"


@pytest.fixture(scope="module")
def agent_image(tmp_path_factory, _dockerd):
    tag = f"ig-test-agent:{uuid.uuid4().hex[:8]}"
    build_image(tmp_path_factory.mktemp("image-context"), tag)
    print(f"\nagent image {tag}: {image_size_mb(tag):.0f} MB")
    yield tag
    import subprocess
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def wait_for_log(docker, name: str, text: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while True:
        logs = docker.cli("logs", name, check=False).stdout + docker.cli("logs", name, check=False).stderr
        if text in logs:
            return logs
        state = docker.inspect(name, "{{.State.Status}}")
        if state != "running" or time.monotonic() > deadline:
            raise AssertionError(f"agent {state}, no {text!r} in its log:\n{logs}")
        time.sleep(0.5)


def start_agent(docker, image: str, tmp_path, without_mounts: tuple[str, ...] = ()):
    """The agent container as the rendered pod spec says (less the volumes named); waits until it serves
    with its exec gadget running on a config pushed after it started. Returns (container, scraper, node)."""
    values = Values(listen_address=f"127.0.0.1:{free_port()}")
    spec = pod_template(values)["spec"]
    (container,) = spec["containers"]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] not in without_mounts]
    volume = ConfigMapVolume(tmp_path / "configmap")
    node = f"node-{uuid.uuid4().hex[:6]}"
    opts, args = docker_run_options(spec, volume.root, node)
    agent = f"ig-test-agent-{uuid.uuid4().hex[:8]}"
    docker.run(*opts, image, *args, name=agent, detach=True)
    logs = wait_for_log(docker, agent, "Publishing metrics")
    assert "waiting for one" in " ".join(logs.split()) and "ig-entrypoint: kernel" in logs

    volume.write({"config.yaml": CAT_BY_POD_CONFIG})
    scraper = IgProcess(None, values.listen_address, values.metrics_path, tmp_path / "unused.log")
    deadline = time.monotonic() + 120  # bcc compiles the exec gadget on the first config
    while scraper.value("ig_gadget_running", category="trace", gadget="exec") != 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert scraper.value("ig_gadget_running", category="trace", gadget="exec") == 1, docker.cli("logs", agent).stderr
    return agent, scraper, node


def test_agent_image_counts_a_pods_cat_loop(require_bpf, docker, busybox_image, agent_image, tmp_path):
    agent, scraper, node = start_agent(docker, agent_image, tmp_path)
    assert "the node's headers" in docker.cli("logs", agent).stdout
    pod, uid = f"busybox-{uuid.uuid4().hex[:6]}", str(uuid.uuid4())
    docker.run("--network", "none",
               "--label", f"io.kubernetes.pod.name={pod}", "--label", "io.kubernetes.pod.namespace=default",
               "--label", "io.kubernetes.container.name=busybox", "--label", f"io.kubernetes.pod.uid={uid}",
               "--label", "io.kubernetes.docker.type=container",
               busybox_image, "sh", "-c", GUIDE_LOOP, name=f"k8s_busybox_{pod}_default_{uid}_0")
    labels = {"k8s_node": node, "k8s_namespace": "default", "k8s_pod": pod, "k8s_container": "busybox", "comm": "cat"}
    assert scraper.wait_for("executed_processes_total", 100, timeout=60, **labels) == 100
    logs = docker.cli("logs", agent)
    assert "Traceback" not in logs.stderr
    # the root file system is read-only: every write of the entrypoint, bcc and ig found its emptyDir
    assert "Read-only file system" not in logs.stdout + logs.stderr and "cannot create" not in logs.stderr
    assert docker.inspect(agent, "{{.HostConfig.ReadonlyRootfs}}") == "true"
    assert docker.inspect(agent, "{{.HostConfig.CapDrop}}") == "[ALL]"


def test_agent_image_falls_back_to_its_own_headers(require_bpf, docker, agent_image, tmp_path):
    """A node without kernel headers: nothing mounted at /host/lib/modules and /host/usr/src."""
    agent, scraper, _ = start_agent(docker, agent_image, tmp_path, without_mounts=("modules", "usr-src"))
    assert "no headers on the node, using the image's" in docker.cli("logs", agent).stdout


def test_agent_image_holds_every_plugin_distribution(agent_image):
    """Every plugins/*/ distribution of this repository is installed in the image and loads."""
    import subprocess
    import tomllib

    from tests.k8s_image import ROOT

    wanted = {tomllib.loads(p.read_text())["project"]["name"] for p in ROOT.glob("plugins/*/pyproject.toml")}
    listed = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "/opt/ig/bin/python",
                             agent_image, "-c", "import importlib.metadata as m; "
                             "print('\\n'.join(ep.dist.name for ep in m.entry_points(group='ig.gadgets')))"],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert wanted <= set(listed.stdout.split()), (wanted, listed.stdout)
    gadgets = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "ig", agent_image,
                              "list-gadgets"], capture_output=True, text=True, timeout=120)
    assert gadgets.returncode == 0 and "broken" not in gadgets.stdout, gadgets.stdout + gadgets.stderr
