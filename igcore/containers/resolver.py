"""Which container a row came from, by cgroup id, mntns or netns: a container, the host, or pending.

Pending means the row may belong to a container not known yet (its runtime has not spoken): the
enricher holds such rows a while. The timing windows (`Windows`) decide how long a new cgroup, or
an unknown namespace while a container starts, may still be claimed; the clock is injected so the
policy can be tested without waiting.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .cgroups import container_ids_of_path
from .model import Container, Windows

if TYPE_CHECKING:
    from .collection import ContainerCollection


class Outcome(enum.Enum):
    CONTAINER = "container"
    HOST = "host"
    PENDING = "pending"


@dataclass(frozen=True)
class Resolution:
    outcome: Outcome
    container: Container | None = None   # set only for CONTAINER


HOST = Resolution(Outcome.HOST)
PENDING = Resolution(Outcome.PENDING)
NO_CLAIM = float("-inf")


class Resolver:
    def __init__(self, collection: ContainerCollection, clock: Callable[[], float] = time.monotonic,
                 windows: Windows = Windows()) -> None:
        self.collection, self.clock, self.windows = collection, clock, windows

    def resolve(self, key: str, value: int) -> Resolution:
        """A pod's sandbox is not a workload: its own processes are the host's, as in Inspektor
        Gadget. By netns, a namespace shared by several containers gives the pod (merge.netns_view)."""
        found = self._resolve(key, value)
        if found.container is not None and found.container.sandbox and key != "netns":
            return HOST
        return found

    def _resolve(self, key: str, value: int) -> Resolution:
        collection = self.collection
        with collection.lock:
            found = collection.indexed(key, value)
            if found is not None:
                return Resolution(Outcome.CONTAINER, found)
            if not value:
                return HOST
            if key != "cgroup_id":
                return self._unknown_namespace(key, value)
            tracker = collection.cgroups
            path = tracker.path_of(value) if tracker is not None else None
            if tracker is None or path is None:
                # a cgroup we have not seen: rescan (or its mkdir event is on its way)
                if tracker is not None:
                    tracker.note_miss()
                collection.kick()
                return PENDING
            cids = container_ids_of_path(path)
            for cid in cids:
                container = collection.get(cid)
                if container is not None:
                    return Resolution(Outcome.CONTAINER, container)
            age = self.clock() - tracker.born_at(value, NO_CLAIM)
            if age < (self.windows.claim if cids else self.windows.young_cgroup):
                # a container's cgroup whose runtime has not spoken yet, or a new cgroup that a
                # runtime may still claim (plain runc with its own cgroup path: state.json comes next)
                collection.kick()
                return PENDING
            # a container of a runtime not watched (or one that existed before ig and nobody
            # claimed at start) counts as the host's, at once
            return HOST

    def _unknown_namespace(self, key: str, value: int) -> Resolution:
        """An unknown namespace is a container's only while a container's namespaces are not known yet."""
        collection = self.collection
        if value == collection.host_namespace(key):
            return HOST
        now = self.clock()
        if any(now - since < self.windows.starting for since in collection.starting_since()):
            collection.kick()
            return PENDING
        return HOST
