"""The container runtimes ig reads: one entry each, and everything else about runtimes is derived
from this table: the `--runtimes` choices and the `--<word>-socketpath` options (cli), the sources
(`sources.host_sources`), the merge precedence (`merge.merge`) and the `runtime.runtimeName` column's
description. Adding a runtime: docs/architecture.md, "A new container runtime".

Imports nothing of igcore at load time: the CLI and the column schema read it while ig starts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

if TYPE_CHECKING:
    from .sources.base import RuntimeSource


class Sign(Enum):
    """What shows that a runtime read from its state directories is installed (any one sign is enough)."""
    SOCKET = "socket"
    STATE_DIRS = "state directories"
    BINARY = "binary"


@dataclass(frozen=True)
class Annotations:
    """Where a runtime records a container's identity in its OCI annotations (docker: its labels)."""
    namespace: str = ""                   # the Kubernetes namespace, pod and container name
    pod: str = ""
    container: str = ""
    image: str = ""
    name: str = ""                        # a name outside Kubernetes
    sandbox: tuple[str, str] = ("", "")   # the key and value that mark a pod's sandbox


CRI_POD = Annotations("io.kubernetes.pod.namespace", "io.kubernetes.pod.name", "io.kubernetes.container.name")


@dataclass(frozen=True)
class Runtime:
    name: str                          # runtime.runtimeName's value and the --runtimes choice
    rank: int                          # two runtimes describe one container: the higher ranked names it
    state_dirs: tuple[str, ...] = ()   # runc-style state roots: <root>/<id>/state.json
    state_depth: int = 1               # directory levels from a root to a state.json's directory
    socket: str = ""                   # its API socket: the default of --<option>-socketpath
    option: str = ""                   # that option's word, as Inspektor Gadget spells it
    signs: tuple[Sign, ...] = ()       # how the state-dir source tells it is installed
    binary: str = ""                   # the executable Sign.BINARY looks for
    marker: str = ""                   # annotation prefix of its containers in a state root another runtime shares
    annotations: Annotations = Annotations()
    # Its own source, reading its API at the socket (it says itself whether the runtime is there);
    # its state directories are then read only once that source is connected.
    api_source: Callable[[Runtime, str], RuntimeSource] | None = None


class RuntimeTable:
    def __init__(self, entries: Iterable[Runtime]) -> None:
        self.entries = tuple(entries)
        self._by_name = {r.name: r for r in self.entries}
        self._annotations = [r.annotations for r in self.entries if r.annotations != Annotations()]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __getitem__(self, name: str) -> Runtime:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def with_sockets(self) -> list[Runtime]:
        return [r for r in self.entries if r.socket]

    def annotations(self) -> list[Annotations]:
        """Each runtime's annotation keys, in the table's order: a state or a label set is read with all."""
        return self._annotations

    def rank(self, name: str) -> int:
        """A runtime this table does not know ranks below every one it knows."""
        found = self._by_name.get(name)
        return found.rank if found is not None else 0

    def runtime_of(self, root_runtime: str, annotations: Mapping[str, str]) -> str:
        """Whose container a state found in `root_runtime`'s state root is: runtimes that share a
        root (cri-o and plain runc share /run/runc) are told apart by the annotations each writes."""
        own = self._by_name.get(root_runtime)
        if own is None:
            return root_runtime
        sharing = [r for r in self.entries if set(r.state_dirs) & set(own.state_dirs)]
        for runtime in sharing:
            if runtime.marker and any(key.startswith(runtime.marker) for key in annotations):
                return runtime.name
        unmarked = [r.name for r in sharing if not r.marker]
        return root_runtime if root_runtime in unmarked or not unmarked else unmarked[0]


def _docker_source(runtime: Runtime, socket: str) -> RuntimeSource:
    from .sources.docker_events import DockerSource

    return DockerSource(socket, runtime=runtime.name)


RUNTIMES = RuntimeTable((
    # docker runs its containers through containerd and runc: its Engine API names them best.
    Runtime("docker", rank=3, state_dirs=("/run/docker/runtime-runc/moby",), socket="/run/docker.sock",
            option="docker", api_source=_docker_source,   # cri-dockerd's labels:
            annotations=replace(CRI_POD, sandbox=("io.kubernetes.docker.type", "podsandbox"))),
    Runtime("containerd", rank=2, state_dirs=("/run/containerd/runc",), state_depth=2,   # <namespace>/<id>
            socket="/run/containerd/containerd.sock", option="containerd", signs=(Sign.SOCKET, Sign.STATE_DIRS),
            annotations=Annotations("io.kubernetes.cri.sandbox-namespace", "io.kubernetes.cri.sandbox-name",
                                    "io.kubernetes.cri.container-name", image="io.kubernetes.cri.image-name",
                                    name="nerdctl/name", sandbox=("io.kubernetes.cri.container-type", "sandbox"))),
    # its roots are plain runc's too: only its socket tells it is installed
    Runtime("cri-o", rank=2, state_dirs=("/run/runc", "/run/crun"), socket="/run/crio/crio.sock", option="crio",
            signs=(Sign.SOCKET,), marker="io.kubernetes.cri-o.",
            annotations=replace(CRI_POD, image="io.kubernetes.cri-o.ImageName",
                                sandbox=("io.kubernetes.cri-o.ContainerType", "sandbox"))),
    Runtime("runc", rank=1, state_dirs=("/run/runc",), signs=(Sign.STATE_DIRS, Sign.BINARY), binary="runc"),
))
