"""What the container collection knows of a container, the options that choose its sources, and its
timing windows."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..columns import CONTAINER_COLUMN_NAMES

DEFAULT_STATE_DIRS: dict[str, tuple[str, ...]] = {
    # runc-style state roots: <root>/<id>/state.json (containerd nests one level: <root>/<namespace>/<id>)
    "docker": ("/run/docker/runtime-runc/moby",),
    "containerd": ("/run/containerd/runc",),
    "cri-o": ("/run/runc", "/run/crun"),
    "runc": ("/run/runc",),
}


@dataclass(frozen=True)
class RuntimeOptions:
    runtimes: tuple[str, ...] = ("docker", "containerd", "cri-o", "runc")
    docker_socket: str = "/run/docker.sock"
    containerd_socket: str = "/run/containerd/containerd.sock"
    crio_socket: str = "/run/crio/crio.sock"
    state_dirs: dict[str, tuple[str, ...]] | None = None
    node_name: str = ""
    # the pod watch from outside a pod (--kubeconfig); in a pod, its service account (containers/pod_source.py)
    kubeconfig: str | None = None

    def roots(self) -> dict[str, tuple[str, ...]]:
        chosen = self.state_dirs or DEFAULT_STATE_DIRS
        return {r: chosen.get(r, ()) for r in self.runtimes}


@dataclass(frozen=True)
class Windows:
    """How long the collection waits for, or remembers, things (seconds)."""
    keep_exited: float = 60.0     # exited containers (and removed cgroups) still resolve late rows
    young_cgroup: float = 0.5     # a new cgroup without a container yet may still get one: hold its rows
    claim: float = 5.0            # a new container's cgroup waits this long for a runtime to claim it
    starting: float = 2.0         # a container without namespaces yet: hold rows of unknown namespaces
    poll: float = 1.0             # sources are also refreshed this often (liveness, no inotify)


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    runtime: str
    image: str = ""
    pid: int = 0
    cgroup_id: int = 0
    mntns: int = 0
    netns: int = 0
    k8s_namespace: str = ""
    k8s_pod: str = ""
    k8s_container: str = ""
    sandbox: bool = False   # a pod's sandbox ("pause"): it holds the pod's namespaces, it is not a workload
    node_name: str = field(default="", compare=False)
    pod_labels: tuple[tuple[str, str], ...] = ()   # a cri-dockerd sandbox's pod labels (containers/pods.py)

    def columns(self) -> dict[str, str]:
        """The container columns but the pod's owner and labels (the collection's `columns_of` adds
        them); k8s.container falls back to the runtime's container name."""
        return {
            "k8s.node": self.node_name,
            "k8s.namespace": self.k8s_namespace,
            "k8s.pod": self.k8s_pod,
            "k8s.container": self.k8s_container or self.name,
            "runtime.runtimeName": self.runtime,
            "runtime.containerId": self.id,
            "runtime.containerName": self.name,
            "runtime.containerImageName": self.image,
        }

    def pod_only(self) -> Container:
        """What rows of a namespace shared by a pod's containers are labelled with: the pod, no container."""
        return Container(id="", name="", runtime="", k8s_namespace=self.k8s_namespace, k8s_pod=self.k8s_pod,
                         node_name=self.node_name)


# The pod's owner and labels are added only where the config uses them (containers/pods.py).
HOST_COLUMNS: dict[str, str] = {name: "" for name in CONTAINER_COLUMN_NAMES
                                if not name.startswith(("k8s.owner.", "k8s.podLabels"))}


def k8s_names(annotations: dict[str, str]) -> tuple[str, str, str]:
    """(namespace, pod, container) from containerd/CRI, cri-o or dockershim metadata."""
    for ns_key, pod_key, container_key in (
        ("io.kubernetes.cri.sandbox-namespace", "io.kubernetes.cri.sandbox-name", "io.kubernetes.cri.container-name"),
        ("io.kubernetes.pod.namespace", "io.kubernetes.pod.name", "io.kubernetes.container.name"),
    ):
        if pod_key in annotations or container_key in annotations:
            return annotations.get(ns_key, ""), annotations.get(pod_key, ""), annotations.get(container_key, "")
    return "", "", ""


def is_sandbox(annotations: dict[str, str]) -> bool:
    """A pod sandbox by containerd's CRI or cri-o annotations, or by cri-dockerd's docker label."""
    return (annotations.get("io.kubernetes.cri.container-type") == "sandbox"
            or annotations.get("io.kubernetes.cri-o.ContainerType") == "sandbox"
            or annotations.get("io.kubernetes.docker.type") == "podsandbox")


def oci_name_and_image(annotations: dict[str, str]) -> tuple[str, str]:
    """(container name, image) from OCI annotations: nerdctl's name, else the Kubernetes container
    name; the image containerd's CRI or cri-o recorded. "" where unknown."""
    name = annotations.get("nerdctl/name") or k8s_names(annotations)[2]
    image = annotations.get("io.kubernetes.cri.image-name") or annotations.get("io.kubernetes.cri-o.ImageName", "")
    return name, image
