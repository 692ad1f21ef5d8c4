"""Every container on the machine, from the runtimes' own records, resolved by cgroup id, mntns or netns.

Sources: the docker Engine API (listing, then the event stream: create/start events carry name, image
and labels, so a container that lives a fraction of a second is still named) and the runc-style state
directories of docker, containerd, cri-o and plain runc (init pid, OCI annotations with Kubernetes
names, cgroup path). New cgroups are reported by the kernel (tracepoint cgroup:cgroup_mkdir) the
moment they are created, so a container's cgroup id is known even if its directory is gone before
its rows are read; when BPF is not available the cgroup tree is rescanned on a miss instead.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from importlib import resources
from typing import Callable

from .cgroups import cgroup2_mount, container_id_of_path, id_of, ns_inode, pid_cgroup_path, scan
from .docker import DockerClient, metadata_from_event, metadata_from_inspect
from .model import Container, RuntimeOptions, k8s_names
from .runc import RuncState, list_states

log = logging.getLogger("igcore.containers")

PENDING = object()   # resolve(): a container's row whose metadata has not arrived yet
HOST = None          # resolve(): a host row

KEEP_EXITED_SECONDS = 60.0
YOUNG_CGROUP_SECONDS = 0.5
# The tracepoint's `root`: cgroup v2's (default) hierarchy is 0; v1 hierarchies count from 1.
CGROUP2_HIERARCHY_ID = 0   # a new cgroup without a container yet may still get one: hold its rows


class _CgroupEvent(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("root", ctypes.c_int32), ("level", ctypes.c_int32), ("path", ctypes.c_char * 256)]


class ContainerRegistry:
    def __init__(self, options: RuntimeOptions = RuntimeOptions()) -> None:
        self.options = options
        self.warnings: list[str] = []
        self._lock = threading.RLock()
        self._mount = cgroup2_mount()
        self._cgroup_paths: dict[int, str] = {}          # cgroup id -> path below the mount
        self._cgroup_born: dict[int, float] = {}         # cgroup id -> when we saw it created
        self._cgroup_of_cid: dict[str, int] = {}         # container id -> cgroup id
        self._docker_meta: dict[str, dict] = {}          # container id -> name/image/k8s/pid
        self._runc: dict[str, tuple[str, RuncState]] = {}  # container id -> (runtime, state)
        self._containers: dict[str, Container] = {}      # live and recently exited, by id
        self._exited: dict[str, float] = {}
        self._by_key: dict[str, dict[int, Container]] = {"cgroup_id": {}, "mntns": {}, "netns": {}}
        self._subscribers: list[tuple[Callable, Callable]] = []
        self._announced: set[str] = set()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._threads: list[threading.Thread] = []
        self._docker: DockerClient | None = None
        self._watch = None
        self._last_scan = 0.0
        # A container sharing ig's (the host's) namespace (--network host) must not claim the
        # host's rows: such namespaces are not indexed.
        self._host_ns = {"netns": ns_inode(os.getpid(), "net"), "mntns": ns_inode(os.getpid(), "mnt")}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._mount is None:
            self._warn("no cgroup2 hierarchy is mounted: rows cannot be attributed by cgroup id")
        else:
            self._cgroup_paths = scan(self._mount)
            self._start_mkdir_watch()
        if "docker" in self.options.runtimes:
            self._start_docker()
        self._refresh_states()
        self._thread(self._refresh_loop, "ig-containers-refresh")

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._docker is not None:
            self._docker.close_events()
        if self._watch is not None:
            transport, bpf = self._watch
            transport.stop()
            bpf.cleanup()
            self._watch = None
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()

    def _thread(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    # -- queries ---------------------------------------------------------------------------
    def lookup(self, key: str, value: int) -> Container | None:
        found = self.resolve(key, value)
        return found if isinstance(found, Container) else None

    def resolve(self, key: str, value: int):
        """A Container, HOST (None), or PENDING when the row may belong to a container not known yet."""
        with self._lock:
            found = self._by_key[key].get(value)
            if found is not None or key != "cgroup_id" or not value:
                return found
            path = self._cgroup_paths.get(value)
            if path is None:
                self._kick.set()   # a cgroup we have not seen: rescan (or the mkdir event is on its way)
                return PENDING
            cid = container_id_of_path(path)
            if cid is not None:
                container = self._build(cid)
                if container is not None:
                    return container
                self._kick.set()
                return PENDING
            born = self._cgroup_born.get(value)
            if born is not None and time.monotonic() - born < YOUNG_CGROUP_SECONDS:
                self._kick.set()   # e.g. plain runc with its own cgroup path: state.json comes next
                return PENDING
            return HOST

    def containers(self) -> list[Container]:
        with self._lock:
            return [c for cid, c in self._containers.items() if cid not in self._exited]

    def subscribe(self, on_added: Callable[[Container], None], on_removed: Callable[[Container], None]) -> None:
        with self._lock:
            self._subscribers.append((on_added, on_removed))
            current = self.containers()
        for c in current:
            if c.pid:
                on_added(c)

    # -- building containers ---------------------------------------------------------------
    def _build(self, cid: str) -> Container | None:
        """Combine what the sources know of `cid` into a Container (under the lock)."""
        meta = self._docker_meta.get(cid)
        runc = self._runc.get(cid)
        if meta is None and runc is None:
            return None
        runtime, state = runc if runc else ("docker", None)
        if meta is not None:
            runtime = "docker"
        annotations = state.annotations if state else {}
        ns, pod, k8s_container = k8s_names(annotations)
        if meta is not None:
            ns, pod, k8s_container = (meta["k8s_namespace"] or ns, meta["k8s_pod"] or pod,
                                      meta["k8s_container"] or k8s_container)
        pid = (meta or {}).get("pid") or (state.pid if state else 0)
        cgroup_id = self._cgroup_of_cid.get(cid, 0)
        if not cgroup_id and state and state.cgroup_path and self._mount and state.cgroup_path.startswith(self._mount):
            cgroup_id = id_of(self._mount, state.cgroup_path[len(self._mount):])
        if not cgroup_id and pid and self._mount:
            path = pid_cgroup_path(pid)
            cgroup_id = id_of(self._mount, path) if path else 0
        old = self._containers.get(cid)
        container = Container(
            id=cid, name=(meta or {}).get("name") or (old.name if old else "") or cid,
            runtime=runtime, image=(meta or {}).get("image", "") or (old.image if old else ""),
            pid=pid or (old.pid if old else 0), cgroup_id=cgroup_id or (old.cgroup_id if old else 0),
            mntns=(ns_inode(pid, "mnt") if pid else 0) or (old.mntns if old else 0),
            netns=(ns_inode(pid, "net") if pid else 0) or (old.netns if old else 0),
            k8s_namespace=ns, k8s_pod=pod, k8s_container=k8s_container, node_name=self.options.node_name,
        )
        self._index(container)
        return container

    def _index(self, container: Container) -> None:
        old = self._containers.get(container.id)
        if old is not None:
            for key in self._by_key:
                value = getattr(old, key)
                if value and self._by_key[key].get(value) is old:
                    del self._by_key[key][value]
        self._containers[container.id] = container
        for key in self._by_key:
            value = getattr(container, key)
            if value and value != self._host_ns.get(key):
                self._by_key[key][value] = container

    def _update(self, cid: str) -> None:
        """Rebuild `cid` and tell subscribers about a newly running one (outside the lock)."""
        with self._lock:
            container = self._build(cid)
            announce = container is not None and container.pid and cid not in self._announced and cid not in self._exited
            if announce:
                self._announced.add(cid)
            subscribers = list(self._subscribers)
        if announce:
            for on_added, _ in subscribers:
                self._call(on_added, container)

    def _exit(self, cid: str) -> None:
        with self._lock:
            container = self._containers.get(cid)
            if container is None or cid in self._exited:
                return
            self._exited[cid] = time.monotonic()
            announced = cid in self._announced
            self._announced.discard(cid)
            subscribers = list(self._subscribers)
        if announced:
            for _, on_removed in subscribers:
                self._call(on_removed, container)

    @staticmethod
    def _call(callback, container) -> None:
        try:
            callback(container)
        except Exception as exc:  # a subscriber's failure must not stop the registry
            log.error("container callback failed for %s: %s", container.name, exc)

    def _forget_old(self) -> None:
        now = time.monotonic()
        with self._lock:
            for cid, when in list(self._exited.items()):
                if now - when > KEEP_EXITED_SECONDS:
                    del self._exited[cid]
                    container = self._containers.pop(cid, None)
                    self._docker_meta.pop(cid, None)
                    self._runc.pop(cid, None)
                    if container:
                        for key in self._by_key:
                            value = getattr(container, key)
                            if value and self._by_key[key].get(value) is container:
                                del self._by_key[key][value]

    # -- cgroups ---------------------------------------------------------------------------
    def _record_cgroup(self, cgroup_id: int, path: str, born: bool) -> None:
        with self._lock:
            self._cgroup_paths[cgroup_id] = path
            if born:
                self._cgroup_born[cgroup_id] = time.monotonic()
            cid = container_id_of_path(path)
            if cid:
                self._cgroup_of_cid[cid] = cgroup_id
                if cid in self._containers or cid in self._docker_meta or cid in self._runc:
                    self._build(cid)

    def _start_mkdir_watch(self) -> None:
        try:
            from ..bpf import RingBufferTransport, compile_program
            from ..gadgets import GadgetStats

            text = resources.files(__package__).joinpath("mkdir_watch.bpf.c").read_text()
            bpf = compile_program(text, name="cgroup watch")
        except Exception as exc:
            log.info("cgroup creation is not traced (%s); rescanning the cgroup tree on a miss instead", exc)
            return
        def decode(data, size):
            ev = ctypes.cast(data, ctypes.POINTER(_CgroupEvent)).contents
            if ev.root == CGROUP2_HIERARCHY_ID:
                self._record_cgroup(ev.id, ev.path.decode(errors="replace"), born=True)
                if container_id_of_path(ev.path.decode(errors="replace")):
                    self._kick.set()
            return None

        transport = RingBufferTransport(bpf, decode, GadgetStats(), poll_ms=20)
        transport.start(lambda rows: None, name="ig-cgroup-watch")
        self._watch = (transport, bpf)

    def _rescan_cgroups(self) -> None:
        if self._mount is None or time.monotonic() - self._last_scan < 0.05:
            return
        self._last_scan = time.monotonic()
        for cgroup_id, path in scan(self._mount).items():
            if cgroup_id not in self._cgroup_paths:
                self._record_cgroup(cgroup_id, path, born=self._watch is None)

    # -- runc-style state directories ------------------------------------------------------
    def _refresh_states(self) -> None:
        seen: set[str] = set()
        for runtime, roots in self.options.roots().items():
            for root in roots:
                for state in list_states(root):
                    if state.id in seen:
                        continue
                    seen.add(state.id)
                    detected = _runtime_of(runtime, state)
                    with self._lock:
                        known = self._runc.get(state.id)
                        self._runc[state.id] = (detected, state)
                        if state.cgroup_path and self._mount and state.cgroup_path.startswith(self._mount):
                            cgroup_id = id_of(self._mount, state.cgroup_path[len(self._mount):])
                            if cgroup_id:
                                self._cgroup_of_cid[state.id] = cgroup_id
                                self._cgroup_paths.setdefault(cgroup_id, state.cgroup_path[len(self._mount):])
                    if known is None or known[1] != state:
                        self._update(state.id)
        with self._lock:
            gone = [cid for cid in self._runc if cid not in seen and cid not in self._docker_meta]
        for cid in gone:
            self._exit(cid)

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            kicked = self._kick.wait(1.0)
            self._kick.clear()
            if self._stop.is_set():
                return
            if kicked:
                self._rescan_cgroups()
            self._refresh_states()
            self._forget_old()
            if kicked:
                time.sleep(0.01)  # a burst of misses costs one refresh per 10 ms

    # -- docker ----------------------------------------------------------------------------
    def _start_docker(self) -> None:
        client = DockerClient(self.options.docker_socket)
        try:
            client.ping()
            ids = client.running_ids()
        except OSError as exc:
            self._warn(f"docker: not reachable at {self.options.docker_socket} ({exc.strerror or exc}); skipped")
            return
        self._docker = client
        self._thread(self._docker_events, "ig-docker-events")
        for cid in ids:
            self._docker_inspect(cid)

    def _docker_inspect(self, cid: str) -> None:
        try:
            meta = metadata_from_inspect(self._docker.inspect(cid))
        except (OSError, ValueError):
            return  # gone already: what the events said is kept
        with self._lock:
            self._docker_meta[cid] = {**self._docker_meta.get(cid, {}), **meta}
        self._update(cid)

    def _docker_events(self) -> None:
        while not self._stop.is_set():
            try:
                for event in self._docker.events():
                    self._docker_event(event)
            except (OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                log.warning("docker event stream interrupted (%s); reconnecting", exc)
                self._stop.wait(1.0)

    def _docker_event(self, event: dict) -> None:
        action = event.get("Action") or event.get("status") or ""
        cid = (event.get("Actor") or {}).get("ID") or event.get("id") or ""
        if not cid:
            return
        if action in ("create", "start"):
            with self._lock:
                meta = self._docker_meta.get(cid, {"pid": 0})
                self._docker_meta[cid] = {**meta, **metadata_from_event(event)}
            self._update(cid)
            if action == "start":
                self._docker_inspect(cid)
        elif action in ("die", "destroy"):
            self._exit(cid)


def _runtime_of(root_runtime: str, state: RuncState) -> str:
    if root_runtime in ("cri-o", "runc"):
        # cri-o and plain runc share /run/runc: cri-o's containers carry its annotations.
        if any(k.startswith("io.kubernetes.cri-o.") for k in state.annotations):
            return "cri-o"
        return "runc"
    return root_runtime
