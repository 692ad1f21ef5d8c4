"""How what the sources say of one container becomes a `Container`: the precedence rules, no I/O.

Sightings are keyed by source: the state-dir source reports under STATE (a `StateFacts`: a runc-style
state and the runtime whose root held it), a runtime's own API source (docker's Engine API) under
its runtime's name (a dict: name, image, pid, k8s names, sandbox). Which one wins is the runtimes'
rank in the table (containers/runtimes.py). The collection reads what must come from /proc
(`Probed`) outside its lock, then calls `merge`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Any, Mapping, NamedTuple

from .model import Container, is_sandbox, k8s_names, oci_name_and_image
from .runc import RuncState
from .runtimes import RUNTIMES, RuntimeTable

STATE = "state"


@dataclass(frozen=True)
class StateFacts:
    runtime: str        # the runtime whose state root held it (containers/runtimes.py)
    state: RuncState


@dataclass(frozen=True)
class Probed:
    """What the kernel says of the container's init process: read by the collection, outside its lock."""
    cgroup_id: int = 0
    mntns: int = 0
    netns: int = 0


class Said(NamedTuple):   # a tuple: merge builds one per source on every change of a container
    """What one source said of the container, in common terms ("" and 0 where it does not know)."""
    runtime: str
    from_state: bool
    name: str = ""
    image: str = ""
    pid: int = 0
    k8s_namespace: str = ""
    k8s_pod: str = ""
    k8s_container: str = ""
    sandbox: bool = False
    pod_labels: tuple[tuple[str, str], ...] = ()   # a cri-dockerd sandbox's, from docker's API


def said(source: str, facts, table: RuntimeTable = RUNTIMES) -> Said:
    if isinstance(facts, StateFacts):
        annotations = facts.state.annotations
        name, image = oci_name_and_image(annotations, table)
        return Said(facts.runtime, True, name, image, facts.state.pid, *k8s_names(annotations, table),
                    sandbox=is_sandbox(annotations, table))
    return Said(source, False, facts.get("name") or "", facts.get("image") or "", facts.get("pid") or 0,
                facts.get("k8s_namespace") or "", facts.get("k8s_pod") or "", facts.get("k8s_container") or "",
                bool(facts.get("sandbox")), tuple(facts.get("pod_labels") or ()))


def ranked(sightings: Mapping[str, object], table: RuntimeTable = RUNTIMES) -> list[Said]:
    """Best first: the higher-ranked runtime; at equal rank a runtime's API before a state."""
    found = [said(source, facts, table) for source, facts in sightings.items() if facts is not None]
    return sorted(found, key=lambda s: (-table.rank(s.runtime), s.from_state))


def state_of(sightings: Mapping[str, Any]) -> RuncState | None:
    found = sightings.get(STATE)
    return found.state if found is not None else None


def chosen_pid(sightings: Mapping[str, object], old: Container | None, table: RuntimeTable = RUNTIMES) -> int:
    """A runc-style state is rewritten at each start, so its pid comes first; an API's is from its latest inspect."""
    return _pid(ranked(sightings, table), old)


def _pid(found: list[Said], old: Container | None) -> int:
    pids = [s.pid for s in found if s.from_state] + [s.pid for s in found if not s.from_state]
    return next((pid for pid in pids if pid), old.pid if old else 0)


def keeps_namespaces(old: Container | None, pid: int) -> bool:
    """Namespaces are read once per init process (its pid may be reused later)."""
    return old is not None and old.pid == pid and bool(old.netns)


def merge(cid: str, sightings: Mapping[str, object], old: Container | None, probed: Probed,
          node_name: str = "", table: RuntimeTable = RUNTIMES) -> Container | None:
    """The container `cid` as its sources describe it; None when no runtime has spoken of it.

    Precedence: the highest-ranked runtime that spoke is the container's runtime, and each field
    is the first that a source knows, best ranked first (docker's metadata wins over a state's
    annotations, except for Kubernetes names docker does not have); a name or image once known is kept."""
    found = ranked(sightings, table)
    if not found:
        return None

    def first(field: str) -> str:
        return next((getattr(s, field) for s in found if getattr(s, field)), "")

    pid = _pid(found, old)
    if old is not None and keeps_namespaces(old, pid):
        mntns, netns = old.mntns, old.netns
    else:
        mntns, netns = probed.mntns, probed.netns
    return Container(
        id=cid, name=first("name") or (old.name if old else "") or cid,
        runtime=found[0].runtime, image=first("image") or (old.image if old else ""),
        pid=pid, cgroup_id=probed.cgroup_id or (old.cgroup_id if old else 0), mntns=mntns, netns=netns,
        k8s_namespace=first("k8s_namespace"), k8s_pod=first("k8s_pod"), k8s_container=first("k8s_container"),
        sandbox=any(s.sandbox for s in found), node_name=node_name,
        pod_labels=next((s.pod_labels for s in found if s.pod_labels), ()),
    )


def after_exit(sightings: Mapping[str, object]) -> dict[str, object]:
    """What is kept of a container that exited: a restart writes a new state, and an API reports its new pid."""
    return {source: {**facts, "pid": 0} if isinstance(facts, dict) else facts
            for source, facts in sightings.items() if source != STATE}


def netns_view(members: list[Container], exited: AbstractSet[str]) -> Container | None:
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
