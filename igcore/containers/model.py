"""What the container collection knows of a container, the options that choose its sources, and its
timing windows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..columns import CONTAINER_COLUMN_NAMES
from .runtimes import RUNTIMES, Runtime, RuntimeTable


@dataclass(frozen=True)
class RuntimeOptions:
    runtimes: tuple[str, ...] = RUNTIMES.names             # the runtimes chosen, in this order
    sockets: Mapping[str, str] = field(default_factory=dict)  # runtime -> API socket, instead of the table's
    state_dirs: dict[str, tuple[str, ...]] | None = None    # runtime -> state roots, instead of the table's
    node_name: str = ""
    table: RuntimeTable = field(default=RUNTIMES, compare=False)

    def socket(self, runtime: Runtime) -> str:
        return self.sockets.get(runtime.name, runtime.socket)

    def chosen(self) -> list[Runtime]:
        return [self.table[name] for name in self.runtimes]
    # the pod watch from outside a pod (--kubeconfig); in a pod, its service account (containers/pod_source.py)
    kubeconfig: str | None = None

    def roots(self) -> dict[str, tuple[str, ...]]:
        if self.state_dirs:
            return {r: self.state_dirs.get(r, ()) for r in self.runtimes}
        return {r.name: r.state_dirs for r in self.chosen()}


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


def k8s_names(annotations: Mapping[str, str], table: RuntimeTable = RUNTIMES) -> tuple[str, str, str]:
    """(namespace, pod, container) under the first runtime's keys (containers/runtimes.py) that name a pod
    or a container."""
    for keys in table.annotations():
        if (keys.pod and keys.pod in annotations) or (keys.container and keys.container in annotations):
            namespace, pod, container = (annotations.get(key, "") for key in (keys.namespace, keys.pod, keys.container))
            return namespace, pod, container
    return "", "", ""


def is_sandbox(annotations: Mapping[str, str], table: RuntimeTable = RUNTIMES) -> bool:
    """A pod sandbox, by any runtime's marker (containerd's CRI, cri-o, cri-dockerd's docker label)."""
    return any(key and annotations.get(key) == value for key, value in (k.sandbox for k in table.annotations()))


def oci_name_and_image(annotations: Mapping[str, str], table: RuntimeTable = RUNTIMES) -> tuple[str, str]:
    """(container name, image) from OCI annotations: a name a runtime recorded (nerdctl's), else the
    Kubernetes container name; the image a runtime recorded. "" where unknown."""
    def first(keys: list[str]) -> str:
        return next((annotations[key] for key in keys if key and annotations.get(key)), "")

    sets = table.annotations()
    return first([k.name for k in sets]) or k8s_names(annotations, table)[2], first([k.image for k in sets])
