"""How what the sources say of one container becomes a `Container`: the precedence rules, no I/O.

Sightings are keyed by source: DOCKER holds the Engine API's metadata (a dict: name, image, pid,
k8s names, sandbox), STATE a runc-style state (`StateFacts`). The collection reads what must come
from /proc (`Probed`) outside its lock, then calls `merge`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .model import Container, is_sandbox, k8s_names, oci_name_and_image
from .runc import RuncState

DOCKER = "docker"
STATE = "state"


@dataclass(frozen=True)
class StateFacts:
    runtime: str        # the runtime whose state root held it (docker, containerd, cri-o, runc)
    state: RuncState


@dataclass(frozen=True)
class Probed:
    """What the kernel says of the container's init process: read by the collection, outside its lock."""
    cgroup_id: int = 0
    mntns: int = 0
    netns: int = 0


def state_of(sightings: Mapping[str, object]) -> RuncState | None:
    found = sightings.get(STATE)
    return found.state if found is not None else None


def chosen_pid(sightings: Mapping[str, object], old: Container | None) -> int:
    """runc's state is rewritten at each start; docker's pid is from the latest inspect."""
    state = state_of(sightings)
    meta = sightings.get(DOCKER) or {}
    return (state.pid if state else 0) or meta.get("pid") or (old.pid if old else 0)


def keeps_namespaces(old: Container | None, pid: int) -> bool:
    """Namespaces are read once per init process (its pid may be reused later)."""
    return old is not None and old.pid == pid and bool(old.netns)


def merge(cid: str, sightings: Mapping[str, object], old: Container | None, probed: Probed,
          node_name: str = "") -> Container | None:
    """The container `cid` as its sources describe it; None when no runtime has spoken of it.

    Precedence: docker's metadata wins over a state's annotations (the runtime is then "docker"),
    except for Kubernetes names docker does not have; a name or image once known is kept."""
    meta = sightings.get(DOCKER)
    found = sightings.get(STATE)
    if meta is None and found is None:
        return None
    runtime, state = (found.runtime, found.state) if found is not None else (DOCKER, None)
    meta = meta or {}
    if sightings.get(DOCKER) is not None:
        runtime = DOCKER
    annotations = state.annotations if state else {}
    ns, pod, k8s_container = k8s_names(annotations)
    oci_name, oci_image = oci_name_and_image(annotations)
    ns, pod = meta.get("k8s_namespace") or ns, meta.get("k8s_pod") or pod
    k8s_container = meta.get("k8s_container") or k8s_container
    pid = chosen_pid(sightings, old)
    if keeps_namespaces(old, pid):
        mntns, netns = old.mntns, old.netns
    else:
        mntns, netns = probed.mntns, probed.netns
    return Container(
        id=cid, name=meta.get("name") or oci_name or (old.name if old else "") or cid,
        runtime=runtime, image=meta.get("image", "") or oci_image or (old.image if old else ""),
        pid=pid, cgroup_id=probed.cgroup_id or (old.cgroup_id if old else 0), mntns=mntns, netns=netns,
        k8s_namespace=ns, k8s_pod=pod, k8s_container=k8s_container,
        sandbox=bool(meta.get("sandbox")) or is_sandbox(annotations), node_name=node_name,
        pod_labels=meta.get("pod_labels", ()),
    )


def after_exit(sightings: Mapping[str, object]) -> dict[str, object]:
    """What is kept of a container that exited: a restart writes a new state, and docker reports its new pid."""
    kept = {source: facts for source, facts in sightings.items() if source != STATE}
    if kept.get(DOCKER) is not None:
        kept[DOCKER] = {**kept[DOCKER], "pid": 0}
    return kept


def netns_view(members: list[Container], exited: set[str] | frozenset[str]) -> Container | None:
    """What rows of one network namespace are labelled with, given the containers in it.

    One container in the namespace: that container. A pod's containers (and its sandbox): the pod,
    with no container name, as Inspektor Gadget does. Containers outside Kubernetes that share a
    namespace (docker's --network container:NAME): the first of `members` (the one that made it).
    Running containers are preferred to ones that exited lately (a restarted pod's old instance)."""
    if not members:
        return None
    running = [c for c in members if c.id not in exited] or members
    workloads = [c for c in running if not c.sandbox]
    if len(workloads) == 1:
        return workloads[0]
    pods = {(c.k8s_namespace, c.k8s_pod) for c in running}
    if not workloads or (len(pods) == 1 and all(next(iter(pods)))):
        return running[0].pod_only()
    return workloads[0]
