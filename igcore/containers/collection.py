"""Every container on the machine, as its sources describe it, indexed by cgroup id, mntns and netns.

Shaped as Inspektor Gadget's container collection: sources (the docker Engine API, runc-style state
directories, the cgroup tracker, the node name; `sources.host_sources` composes them from the
options) feed one collection through a small interface (`sources.base.SourceSink`); `merge.merge`
turns what they said into a `Container`; the `Resolver` answers for rows. The collection keeps the
containers and the recently exited, the indexes and the shared-netns view, and tells subscribers
about containers that start and exit. It can be stopped and started again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Iterable

from ..health import loop_errors
from .cgroups import cgroup2_mount, container_ids_of_path
from .merge import Probed, StateFacts, after_exit, chosen_pid, keeps_namespaces, merge, netns_view, state_of
from .model import Container, RuntimeOptions, Windows
from .pods import PodDirectory
from .probe import HostProbe
from .resolver import Resolution, Resolver
from .runtimes import RUNTIMES, RuntimeTable
from .sources.base import EVERY_CONTAINER, ContainerSource, RuntimeSource
from .sources.cgroup_tracker import CgroupTracker

log = logging.getLogger("igcore.containers")

INDEXED_KEYS = ("cgroup_id", "mntns", "netns")


class ContainerCollection:
    def __init__(self, sources: Iterable[ContainerSource] = (), *, clock: Callable[[], float] = time.monotonic,
                 windows: Windows = Windows(), probe: HostProbe | None = None,
                 runtimes: RuntimeTable = RUNTIMES) -> None:
        self.sources = list(sources)
        self.runtimes = runtimes   # their ranks are the merge's precedence
        self.cgroups = next((s for s in self.sources if isinstance(s, CgroupTracker)), None)
        self.clock, self.windows = clock, windows
        self.probe = probe or HostProbe(self.cgroups.mount if self.cgroups else cgroup2_mount())
        self.resolver = Resolver(self, clock, windows)
        self.warnings: list[str] = []   # runtimes there but unusable
        self.skipped: list[str] = []    # runtimes not installed
        self.lock = threading.RLock()
        self._notify = threading.RLock()   # taken before `lock`: one rebuild (and its announcement) at a time
        self._sightings: dict[str, dict[str, Any]] = {}      # container id -> source -> what it said
        self._node: dict[str, Any] = {}                      # source -> facts about every container
        self._cgroup_of: dict[str, int] = {}                 # container id -> cgroup id (tracker, state)
        self._claims: dict[str, str] = {}                    # cgroup path a state names -> container id
        self._containers: dict[str, Container] = {}          # live and recently exited, in first-seen order
        self._exited: dict[str, float] = {}
        self._starting: dict[str, float] = {}                # container id -> first seen, while its netns is unknown
        self._index: dict[str, dict[int, Container]] = {key: {} for key in INDEXED_KEYS}
        self._subscribers: list[tuple[Callable, Callable]] = []
        self._announced: set[str] = set()
        # A container sharing ig's (the host's) namespace (--network host) must not claim the
        # host's rows: such namespaces are not indexed.
        self._host_ns = self.probe.host_namespaces()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None
        # Pod owners and labels: fed by the pod watch, else by cri-dockerd's sandboxes seen here.
        self.pods = PodDirectory(clock)
        self.subscribe(self.pods.sandbox_added, self.pods.sandbox_removed)

    @classmethod
    def for_host(cls, options: RuntimeOptions = RuntimeOptions(), *, clock: Callable[[], float] = time.monotonic,
                 windows: Windows = Windows(), compiler=None) -> ContainerCollection:
        """The sources the options choose (the host CLI and the node agent both start here);
        `compiler` compiles the cgroup watch (igcore.bpf.Compiler; None: one of its own)."""
        from .sources import host_sources

        return cls(host_sources(options, clock=clock, windows=windows, compiler=compiler), clock=clock,
                   windows=windows, runtimes=options.table)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._kick.clear()
        for source in self.sources:
            source.start(self)
        self._say_if_no_runtime()
        self._refresh_sources()
        self._thread = threading.Thread(target=self._housekeeping, name="ig-containers-refresh", daemon=True)
        self._thread.start()

    def _say_if_no_runtime(self) -> None:
        readers = [s for s in self.sources if isinstance(s, RuntimeSource)]
        if readers and not any(s.runtimes_in_use() for s in readers):
            self.warn("no container runtime found or reachable (" + "; ".join(self.skipped + self.warnings)
                      + "): container attribution is off, every event counts as a host event")

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        for source in reversed(self.sources):
            source.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _housekeeping(self) -> None:
        """Refreshes the sources when a resolution missed (and every `poll` seconds), expires the old."""
        while not self._stop.is_set():
            kicked = self._kick.wait(self.windows.poll)
            self._kick.clear()
            if self._stop.is_set():
                return
            self._refresh_sources()
            try:
                self.expire()
            except Exception as exc:  # the loop must go on
                loop_errors.record("containers.refresh", exc)
            if kicked:
                self._stop.wait(0.01)  # a burst of misses or state changes costs one refresh per 10 ms

    def _refresh_sources(self) -> None:
        for source in self.sources:
            try:
                source.refresh()
            except Exception as exc:  # one failing source must not stop the others
                loop_errors.record(f"containers.{source.name}", exc)

    # -- what sources call (sources.base.SourceSink) ----------------------------------------
    def report(self, source: str, cid: str, facts: object, running: bool = False) -> None:
        """`source` says `facts` of container `cid` (EVERY_CONTAINER: of every container on this node).
        A dict updates what the source said before. `running`: the container (re)started."""
        with self.lock:
            if cid == EVERY_CONTAINER:
                self._node[source] = facts
                return
            sightings = self._sightings.setdefault(cid, {})
            before = sightings.get(source)
            if isinstance(facts, dict):
                facts = {**(before or {}), **facts}
            old = self._containers.get(cid)
            if (facts == before and old is not None and old.cgroup_id
                    and not (running and cid in self._exited)):
                return   # nothing new (a periodic re-read)
            sightings[source] = facts
            if isinstance(facts, StateFacts):
                path = self.probe.relative(facts.state.cgroup_path)
                if path is not None:
                    self._claims[path] = cid
        self._update(cid, running)

    def report_exit(self, cid: str) -> None:
        with self._notify:
            with self.lock:
                container = self._containers.get(cid)
                if container is None or cid in self._exited:
                    return
                self._exited[cid] = self.clock()
                self._refresh_netns(container.netns)
                self._starting.pop(cid, None)
                self._sightings[cid] = after_exit(self._sightings.get(cid, {}))
                announced = cid in self._announced
                self._announced.discard(cid)
                subscribers = list(self._subscribers)
            if announced:
                for _, on_removed in subscribers:
                    self._call(on_removed, container)

    def report_cgroup(self, cgroup_id: int, path: str, born: bool) -> None:
        """The cgroup tracker saw a cgroup (below the mount): a container's own, if a state or its name says so."""
        with self.lock:
            cid = self._claims.get(path)   # a runc container's own path (plain runc: /<id>)
            cids = container_ids_of_path(path)
            if cid is None and cids and cids[0] in path.rsplit("/", 1)[-1]:   # its own cgroup, not one below
                cid = cids[0]
            if cid is None:
                return
            self._cgroup_of[cid] = cgroup_id
            known = cid in self._containers or cid in self._sightings
            if not known and born:
                self._starting.setdefault(cid, self.clock())   # its runtime will tell us more
        if known:
            self._update(cid)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    def skip(self, message: str) -> None:
        self.skipped.append(message)
        log.info(message)

    def kick(self) -> None:
        """Ask for a refresh of the sources soon (a row could not be resolved)."""
        self._kick.set()

    # -- queries ---------------------------------------------------------------------------
    def resolve(self, key: str, value: int) -> Resolution:
        return self.resolver.resolve(key, value)

    def lookup(self, key: str, value: int) -> Container | None:
        return self.resolve(key, value).container

    def containers(self, include_exited: bool = False) -> list[Container]:
        """Running containers (and, with include_exited, those that exited in the last minute)."""
        with self.lock:
            return [c for cid, c in self._containers.items() if include_exited or cid not in self._exited]

    def columns_of(self, container: Container) -> dict[str, str]:
        """A container's columns, with its pod's owner and labels."""
        return {**container.columns(), **self.pods.columns(container.k8s_namespace, container.k8s_pod)}

    def get(self, cid: str) -> Container | None:
        with self.lock:
            return self._containers.get(cid)

    def indexed(self, key: str, value: int) -> Container | None:
        with self.lock:
            return self._index[key].get(value)

    def host_namespace(self, key: str) -> int:
        return self._host_ns.get(key, 0)

    def starting_since(self) -> list[float]:
        """When each container whose namespaces are not known yet was first seen."""
        with self.lock:
            return list(self._starting.values())

    def subscribe(self, on_added: Callable[[Container], None], on_removed: Callable[[Container], None]) -> None:
        """on_added for each running container at once, then for each new one; on_removed when one
        exits. Callbacks come one at a time, in order (never a removal before its addition)."""
        with self._notify:
            with self.lock:
                self._subscribers.append((on_added, on_removed))
                current = [c for c in self.containers() if c.id in self._announced]
            for c in current:
                self._call(on_added, c)

    def unsubscribe(self, on_added: Callable[[Container], None], on_removed: Callable[[Container], None]) -> None:
        with self._notify, self.lock:
            self._subscribers = [s for s in self._subscribers if s != (on_added, on_removed)]

    # -- building containers ---------------------------------------------------------------
    def _update(self, cid: str, running: bool = False) -> None:
        """Rebuild `cid` from its sightings and tell subscribers about a newly running one.

        /proc is read between two holds of the lock; `_notify` keeps rebuilds in order."""
        with self._notify:
            with self.lock:
                if running and self._exited.pop(cid, None) is not None and cid in self._containers:
                    self._refresh_netns(self._containers[cid].netns)
                old = self._containers.get(cid)
                sightings = dict(self._sightings.get(cid, {}))
                cgroup_id = self._cgroup_of.get(cid, 0)
                node_name = (self._node.get("node") or {}).get("node_name", "")
                if cid in self._exited:
                    # kept as it was (its pid may be reused, its state is gone); only a late cgroup id is added
                    if old is not None and not old.cgroup_id and cgroup_id:
                        self._put(replace(old, cgroup_id=cgroup_id))
                    return
            container = merge(cid, sightings, old, self._probe(cid, sightings, old, cgroup_id), node_name,
                              self.runtimes)
            if container is None:
                return
            with self.lock:
                if container != old:
                    self._put(container)
                container = self._containers[container.id]
                announce = (container.pid and container.netns
                            and cid not in self._announced and cid not in self._exited)
                if announce:
                    self._announced.add(cid)
                subscribers = list(self._subscribers)
            if announce:
                for on_added, _ in subscribers:
                    self._call(on_added, container)

    def _probe(self, cid: str, sightings: dict, old: Container | None, cgroup_id: int) -> Probed:
        """What /proc and cgroupfs say of the container (outside the lock)."""
        probe, state = self.probe, state_of(sightings)
        pid = chosen_pid(sightings, old, self.runtimes)
        path = probe.relative(state.cgroup_path) if state else None
        if not cgroup_id and path is not None:
            # the directory may be gone already (and its creation reported, or on its way)
            cgroup_id = probe.cgroup_id_of_path(path) or (self.cgroups.id_of_path(path) if self.cgroups else 0)
            if cgroup_id:
                if self.cgroups is not None:
                    self.cgroups.learn(cgroup_id, path)
                with self.lock:
                    self._cgroup_of[cid] = cgroup_id
        if not cgroup_id and pid:
            cgroup_id = probe.cgroup_id_of_pid(pid)
        mntns = netns = 0
        if not keeps_namespaces(old, pid) and pid and (state is None or state.pid != pid or probe.alive(state)):
            mntns, netns = probe.namespaces(pid)   # never a reused pid's
        return Probed(cgroup_id=cgroup_id, mntns=mntns, netns=netns)

    def _put(self, container: Container) -> None:
        old = self._containers.get(container.id)
        self._containers[container.id] = container   # replaced in place: the first-seen order is kept
        if old is not None:
            self._unindex(old)
        for key in ("cgroup_id", "mntns"):
            value = getattr(container, key)
            if value and value != self._host_ns.get(key):
                self._index[key][value] = container
        self._refresh_netns(container.netns)
        if container.netns or container.id in self._exited:
            self._starting.pop(container.id, None)
        else:
            self._starting.setdefault(container.id, self.clock())

    def _unindex(self, container: Container) -> None:
        for key in ("cgroup_id", "mntns"):
            value = getattr(container, key)
            if value and self._index[key].get(value) is container:
                del self._index[key][value]
        self._refresh_netns(container.netns)

    def _refresh_netns(self, netns: int) -> None:
        """Re-derive what rows of `netns` are labelled with, after one of its containers changed."""
        if not netns or netns == self._host_ns.get("netns"):
            return
        view = netns_view([c for c in self._containers.values() if c.netns == netns], self._exited.keys())
        if view is None:
            self._index["netns"].pop(netns, None)
        else:
            self._index["netns"][netns] = view

    @staticmethod
    def _call(callback, container) -> None:
        try:
            callback(container)
        except Exception as exc:  # a subscriber's failure must not stop the collection
            loop_errors.record("containers.subscriber", exc)

    def expire(self) -> None:
        """Forget containers that exited long ago, and the starting marks of ones that never started."""
        now, windows = self.clock(), self.windows
        with self.lock:
            for cid, when in list(self._exited.items()):
                if now - when > windows.keep_exited:
                    del self._exited[cid]
                    container = self._containers.pop(cid, None)
                    self._sightings.pop(cid, None)
                    self._cgroup_of.pop(cid, None)
                    self._claims = {p: c for p, c in self._claims.items() if c != cid}
                    if container:
                        self._unindex(container)
            for cid, since in list(self._starting.items()):
                if now - since > windows.starting:
                    del self._starting[cid]   # e.g. `docker create` without a start
        if self.cgroups is not None:
            self.cgroups.expire(now)
