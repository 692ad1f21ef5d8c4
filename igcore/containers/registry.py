"""Every container on the machine, from the runtimes' own records, resolved by cgroup id, mntns or netns.

Sources: the docker Engine API (listing, then the event stream: create/start events carry name, image
and labels, so a container that lives a fraction of a second is still named) and the runc-style state
directories of docker, containerd, cri-o and plain runc (init pid, OCI annotations with Kubernetes
names, cgroup path), watched with inotify: a runtime writes a container's state before its process
runs. New cgroups are reported by the kernel (tracepoints cgroup:cgroup_mkdir/rmdir) the moment they
are created, so a container's cgroup id is known even if its directory is gone before its rows are
read; when BPF is not available the cgroup tree is rescanned on a miss instead.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import threading
import time
from dataclasses import replace
from importlib import resources
from typing import Callable

from .cgroups import cgroup2_mount, container_ids_of_path, id_of, ns_inode, pid_cgroup_path, scan
from .docker import DockerClient, metadata_from_event, metadata_from_inspect
from .inotify import StateDirWatcher
from .model import Container, RuntimeOptions, is_sandbox, k8s_names, oci_name_and_image
from .runc import RuncState, StateReader

log = logging.getLogger("igcore.containers")

PENDING = object()   # resolve(): a container's row whose metadata has not arrived yet
HOST = None          # resolve(): a host row

KEEP_EXITED_SECONDS = 60.0     # exited containers (and removed cgroups) still resolve late rows
YOUNG_CGROUP_SECONDS = 0.5     # a new cgroup without a container yet may still get one: hold its rows
CLAIM_SECONDS = 5.0            # a new container's cgroup waits this long for a runtime to claim it
STARTING_SECONDS = 2.0         # a container without namespaces yet: hold rows of unknown namespaces
POLL_SECONDS = 1.0             # state directories are also re-read this often (liveness, no inotify)
# The tracepoint's `root`: cgroup v2's (default) hierarchy is 0; v1 hierarchies count from 1.
CGROUP2_HIERARCHY_ID = 0
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


class _CgroupEvent(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("root", ctypes.c_int32), ("level", ctypes.c_int32),
                ("removed", ctypes.c_uint32), ("path", ctypes.c_char * 256)]


class ContainerRegistry:
    def __init__(self, options: RuntimeOptions = RuntimeOptions()) -> None:
        self.options = options
        self.warnings: list[str] = []
        self._lock = threading.RLock()
        self._notify = threading.RLock()   # taken before _lock: subscribers are told one change at a time
        self._mount = cgroup2_mount()
        self._cgroup_paths: dict[int, str] = {}          # cgroup id -> path below the mount
        self._cgroup_by_path: dict[str, int] = {}        # and back
        self._state_cgroups: dict[str, str] = {}         # cgroup path a runc state names -> container id
        self._cgroup_born: dict[int, float] = {}         # cgroup id -> when we saw it created
        self._cgroup_removed: dict[int, float] = {}      # cgroup id -> when it was removed
        self._cgroup_of_cid: dict[str, int] = {}         # container id -> cgroup id
        self._docker_meta: dict[str, dict] = {}          # container id -> name/image/k8s/pid
        self._runc: dict[str, tuple[str, RuncState]] = {}  # container id -> (runtime, state)
        self._containers: dict[str, Container] = {}      # live and recently exited, by id
        self._exited: dict[str, float] = {}
        self._starting: dict[str, float] = {}            # container id -> first seen, while its netns is unknown
        self._by_key: dict[str, dict[int, Container]] = {"cgroup_id": {}, "mntns": {}, "netns": {}}
        self._subscribers: list[tuple[Callable, Callable]] = []
        self._announced: set[str] = set()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._cgroup_miss = False
        self._threads: list[threading.Thread] = []
        self._docker: DockerClient | None = None
        self._roots: dict[str, tuple[str, ...]] = {}     # runtime -> state roots read
        self._states = StateReader()
        self._refresh_lock = threading.Lock()            # state directories are read by one thread at a time
        self._stopped_seen: set[tuple[str, int]] = set()
        self._state_watch: StateDirWatcher | None = None
        self._cgroup_watch = None
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
            self._cgroup_by_path = {path: cgroup_id for cgroup_id, path in self._cgroup_paths.items()}
            self._start_cgroup_watch()
        self._roots = self._present_roots()
        self._start_state_watch()
        if "docker" in self.options.runtimes:
            self._start_docker()
        self._refresh_states()
        self._thread(self._refresh_loop, "ig-containers-refresh")

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._docker is not None:
            self._docker.close_events()
        if self._cgroup_watch is not None:
            transport, bpf = self._cgroup_watch
            transport.stop()
            bpf.cleanup()
            self._cgroup_watch = None
        if self._state_watch is not None:
            self._state_watch.stop()
            self._state_watch = None
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

    def _present_roots(self) -> dict[str, tuple[str, ...]]:
        """The state roots of the runtimes that are installed; one warning for each that is not."""
        roots = {}
        for runtime, dirs in self.options.roots().items():
            if runtime == "docker":
                roots[runtime] = dirs   # read only once the Engine API answered (see _start_docker)
                continue
            if runtime == "cri-o":   # its roots (/run/runc) are plain runc's too: only its socket tells
                signs = [self.options.crio_socket]
            elif runtime == "containerd":
                signs = [self.options.containerd_socket, *dirs]
            else:
                signs = [*dirs, "the runc binary"]
            if any(os.path.exists(s) for s in signs) or (runtime == "runc" and shutil.which("runc", path=SBIN_PATH)):
                roots[runtime] = dirs
            else:
                self._warn(f"{runtime}: not found ({', '.join(signs)}); skipped")
        return roots

    # -- queries ---------------------------------------------------------------------------
    def lookup(self, key: str, value: int) -> Container | None:
        found = self.resolve(key, value)
        return found if isinstance(found, Container) else None

    def resolve(self, key: str, value: int):
        """A Container, HOST (None), or PENDING when the row may belong to a container not known yet.

        A pod's sandbox is not a workload: its own processes are the host's, as in Inspektor Gadget.
        By netns, a namespace shared by several containers gives the pod (see _netns_view)."""
        found = self._resolve(key, value)
        if isinstance(found, Container) and found.sandbox and key != "netns":
            return HOST
        return found

    def _resolve(self, key: str, value: int):
        with self._lock:
            found = self._by_key[key].get(value)
            if found is not None or not value:
                return found
            if key != "cgroup_id":
                return self._resolve_ns(key, value)
            path = self._cgroup_paths.get(value)
            if path is None:
                self._miss()   # a cgroup we have not seen: rescan (or its mkdir event is on its way)
                return PENDING
            cids = container_ids_of_path(path)
            for cid in cids:
                container = self._build(cid)
                if container is not None:
                    return container
            age = time.monotonic() - self._cgroup_born.get(value, -1e9)
            if age < (CLAIM_SECONDS if cids else YOUNG_CGROUP_SECONDS):
                # a container's cgroup whose runtime has not spoken yet, or a new cgroup that a
                # runtime may still claim (plain runc with its own cgroup path: state.json comes next)
                self._kick.set()
                return PENDING
            # a container of a runtime not watched (or one that existed before ig and nobody
            # claimed at start) counts as the host's, at once
            return HOST

    def _resolve_ns(self, key: str, value: int):
        """An unknown namespace is a container's only while a container's namespaces are not known yet."""
        if value == self._host_ns.get(key):
            return HOST
        now = time.monotonic()
        if any(now - since < STARTING_SECONDS for since in self._starting.values()):
            self._kick.set()
            return PENDING
        return HOST

    def _miss(self) -> None:
        self._cgroup_miss = True
        self._kick.set()

    def containers(self, include_exited: bool = False) -> list[Container]:
        """Running containers (and, with include_exited, those that exited in the last minute)."""
        with self._lock:
            return [c for cid, c in self._containers.items() if include_exited or cid not in self._exited]

    def subscribe(self, on_added: Callable[[Container], None], on_removed: Callable[[Container], None]) -> None:
        """on_added for each running container at once, then for each new one; on_removed when one
        exits. Callbacks come one at a time, in order (never a removal before its addition)."""
        with self._notify:
            with self._lock:
                self._subscribers.append((on_added, on_removed))
                current = [c for c in self.containers() if c.id in self._announced]
            for c in current:
                on_added(c)

    def unsubscribe(self, on_added: Callable[[Container], None], on_removed: Callable[[Container], None]) -> None:
        with self._notify, self._lock:
            self._subscribers = [s for s in self._subscribers if s != (on_added, on_removed)]

    # -- building containers ---------------------------------------------------------------
    def _build(self, cid: str) -> Container | None:
        """Combine what the sources know of `cid` into a Container (under the lock).

        An exited container is kept as it was (its pid may be reused, its state is gone); only a
        cgroup id reported late is added."""
        old = self._containers.get(cid)
        if old is not None and cid in self._exited:
            cgroup_id = old.cgroup_id or self._cgroup_of_cid.get(cid, 0)
            if cgroup_id != old.cgroup_id:
                self._index(replace(old, cgroup_id=cgroup_id))
            return self._containers[cid]
        meta = self._docker_meta.get(cid)
        runc = self._runc.get(cid)
        if meta is None and runc is None:
            return None
        runtime, state = runc if runc else ("docker", None)
        if meta is not None:
            runtime = "docker"
        annotations = state.annotations if state else {}
        ns, pod, k8s_container = k8s_names(annotations)
        oci_name, oci_image = oci_name_and_image(annotations)
        if meta is not None:
            ns, pod, k8s_container = (meta["k8s_namespace"] or ns, meta["k8s_pod"] or pod,
                                      meta["k8s_container"] or k8s_container)
        # runc's state is rewritten at each start; docker's pid is from the latest inspect
        pid = (state.pid if state else 0) or (meta or {}).get("pid") or (old.pid if old else 0)
        cgroup_id = self._cgroup_of_cid.get(cid, 0)
        if not cgroup_id and state and state.cgroup_path and self._mount and state.cgroup_path.startswith(self._mount):
            cgroup_id = id_of(self._mount, state.cgroup_path[len(self._mount):])
        if not cgroup_id and pid and self._mount:
            path = pid_cgroup_path(pid)
            cgroup_id = id_of(self._mount, path) if path else 0
        if old is not None and old.pid == pid and old.netns:
            mntns, netns = old.mntns, old.netns   # read once per init process (its pid may be reused later)
        elif pid and (state is None or state.pid != pid or state.alive()):   # never a reused pid's
            mntns, netns = ns_inode(pid, "mnt"), ns_inode(pid, "net")
        else:
            mntns, netns = 0, 0
        container = Container(
            id=cid, name=(meta or {}).get("name") or oci_name or (old.name if old else "") or cid,
            runtime=runtime, image=(meta or {}).get("image", "") or oci_image or (old.image if old else ""),
            pid=pid, cgroup_id=cgroup_id or (old.cgroup_id if old else 0), mntns=mntns, netns=netns,
            k8s_namespace=ns, k8s_pod=pod, k8s_container=k8s_container,
            sandbox=bool((meta or {}).get("sandbox")) or is_sandbox(annotations), node_name=self.options.node_name,
        )
        if container != old:
            self._index(container)
        return self._containers[cid]

    def _index(self, container: Container) -> None:
        old = self._containers.get(container.id)
        self._containers[container.id] = container   # replaced in place: the first-seen order is kept
        if old is not None:
            self._unindex(old)
        for key in ("cgroup_id", "mntns"):
            value = getattr(container, key)
            if value and value != self._host_ns.get(key):
                self._by_key[key][value] = container
        self._refresh_netns(container.netns)
        if container.netns or container.id in self._exited:
            self._starting.pop(container.id, None)
        else:
            self._starting.setdefault(container.id, time.monotonic())

    def _unindex(self, container: Container) -> None:
        for key in ("cgroup_id", "mntns"):
            value = getattr(container, key)
            if value and self._by_key[key].get(value) is container:
                del self._by_key[key][value]
        self._refresh_netns(container.netns)

    def _refresh_netns(self, netns: int) -> None:
        """Re-derive what rows of `netns` are labelled with, after one of its containers changed."""
        if not netns or netns == self._host_ns["netns"]:
            return
        view = self._netns_view([c for c in self._containers.values() if c.netns == netns])
        if view is None:
            self._by_key["netns"].pop(netns, None)
        else:
            self._by_key["netns"][netns] = view

    def _netns_view(self, members: list[Container]) -> Container | None:
        """One container in the namespace: that container. A pod's containers (and its sandbox): the
        pod, with no container name, as Inspektor Gadget does. Containers outside Kubernetes that share
        a namespace (docker's --network container:NAME): the one that came first, which made it.
        Running containers are preferred to ones that exited lately (a restarted pod's old instance)."""
        if not members:
            return None
        running = [c for c in members if c.id not in self._exited] or members
        workloads = [c for c in running if not c.sandbox]
        if len(workloads) == 1:
            return workloads[0]
        pods = {(c.k8s_namespace, c.k8s_pod) for c in running}
        if not workloads or (len(pods) == 1 and all(next(iter(pods)))):
            return running[0].pod_only()
        return workloads[0]   # _containers keeps the order in which containers were first seen

    def _update(self, cid: str, running: bool = False) -> None:
        """Rebuild `cid` and tell subscribers about a newly running one (outside the lock).

        `running`: a source says the container (re)started, so an earlier exit is forgotten."""
        with self._notify:
            with self._lock:
                if running and self._exited.pop(cid, None) is not None and cid in self._containers:
                    self._refresh_netns(self._containers[cid].netns)
                container = self._build(cid)
                announce = (container is not None and container.pid and container.netns
                            and cid not in self._announced and cid not in self._exited)
                if announce:
                    self._announced.add(cid)
                subscribers = list(self._subscribers)
            if announce:
                for on_added, _ in subscribers:
                    self._call(on_added, container)

    def _exit(self, cid: str) -> None:
        with self._notify:
            with self._lock:
                container = self._containers.get(cid)
                if container is None or cid in self._exited:
                    return
                self._exited[cid] = time.monotonic()
                self._refresh_netns(container.netns)
                self._starting.pop(cid, None)
                self._runc.pop(cid, None)                  # a restart writes a new state
                self._docker_meta.get(cid, {})["pid"] = 0  # and docker reports its new pid
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
                    self._cgroup_of_cid.pop(cid, None)
                    self._state_cgroups = {p: c for p, c in self._state_cgroups.items() if c != cid}
                    if container:
                        self._unindex(container)
            for cid, since in list(self._starting.items()):
                if now - since > STARTING_SECONDS:
                    del self._starting[cid]   # e.g. `docker create` without a start
            for cgroup_id, when in list(self._cgroup_born.items()):
                if now - when > CLAIM_SECONDS:
                    del self._cgroup_born[cgroup_id]
            for cgroup_id, when in list(self._cgroup_removed.items()):
                if now - when > KEEP_EXITED_SECONDS:
                    del self._cgroup_removed[cgroup_id]
                    path = self._cgroup_paths.pop(cgroup_id, None)
                    if self._cgroup_by_path.get(path) == cgroup_id:
                        del self._cgroup_by_path[path]

    # -- cgroups ---------------------------------------------------------------------------
    def _record_cgroup(self, cgroup_id: int, path: str, born: bool) -> None:
        with self._lock:
            self._cgroup_paths[cgroup_id] = path
            self._cgroup_by_path[path] = cgroup_id
            self._cgroup_removed.pop(cgroup_id, None)
            if born:
                self._cgroup_born[cgroup_id] = time.monotonic()
            cids = container_ids_of_path(path)
            cid = self._state_cgroups.get(path)   # a runc container's own path (plain runc: /<id>)
            if cid is None and cids and cids[0] in path.rsplit("/", 1)[-1]:   # its own cgroup, not one below
                cid = cids[0]
            if cid is not None:
                self._cgroup_of_cid[cid] = cgroup_id
                if cid in self._containers or cid in self._docker_meta or cid in self._runc:
                    self._build(cid)
                elif born:
                    self._starting.setdefault(cid, time.monotonic())   # its runtime will tell us more

    def _start_cgroup_watch(self) -> None:
        try:
            from ..bpf import RingBufferTransport, compile_program
            from ..gadgets import GadgetStats

            text = resources.files(__package__).joinpath("cgroup_watch.bpf.c").read_text()
            bpf = compile_program(text, name="cgroup watch")
        except Exception as exc:
            log.info("cgroup creation is not traced (%s); rescanning the cgroup tree on a miss instead", exc)
            return

        def decode(data, size):
            ev = ctypes.cast(data, ctypes.POINTER(_CgroupEvent)).contents
            if ev.root != CGROUP2_HIERARCHY_ID:
                return None
            if ev.removed:
                with self._lock:
                    self._cgroup_removed[ev.id] = time.monotonic()
                return None
            path = ev.path.decode(errors="replace")
            self._record_cgroup(ev.id, path, born=True)
            if container_ids_of_path(path):
                self._kick.set()
            return None

        transport = RingBufferTransport(bpf, decode, GadgetStats(), poll_ms=20)
        transport.start(lambda rows: None, name="ig-cgroup-watch")
        self._cgroup_watch = (transport, bpf)

    def _rescan_cgroups(self) -> None:
        if self._mount is None or time.monotonic() - self._last_scan < 0.05:
            return
        self._last_scan = time.monotonic()
        present = scan(self._mount)
        for cgroup_id, path in present.items():
            if cgroup_id not in self._cgroup_paths:
                self._record_cgroup(cgroup_id, path, born=self._cgroup_watch is None)
        with self._lock:
            for cgroup_id in self._cgroup_paths.keys() - present.keys():
                self._cgroup_removed.setdefault(cgroup_id, self._last_scan)

    # -- runc-style state directories ------------------------------------------------------
    def _start_state_watch(self) -> None:
        depth = {"containerd": 2}
        roots = {root: depth.get(runtime, 1) for runtime, dirs in self._roots.items() for root in dirs}
        if not roots:
            return
        try:
            self._state_watch = StateDirWatcher(roots, self._states_changed)
        except OSError as exc:
            log.info("state directories are not watched (%s); re-reading them every %.0f s", exc, POLL_SECONDS)
            return
        self._state_watch.start()

    def _states_changed(self) -> None:
        """From the inotify thread: read the new state at once, a `runc run` may last milliseconds."""
        try:
            self._refresh_states()
        except Exception as exc:  # the watch must go on
            log.error("reading the runtimes' state directories failed: %s", exc)

    def _refresh_states(self) -> None:
        with self._refresh_lock:
            running: dict[str, tuple[str, RuncState]] = {}
            stopped: dict[str, tuple[str, RuncState]] = {}
            for runtime, roots in self._roots.items():
                if runtime == "docker" and self._docker is None:
                    continue
                for root in roots:
                    for state in self._states.list(root):
                        if state.id not in running and state.id not in stopped:
                            # a state whose init exited (runc run -d, never deleted) is a stopped container
                            found = running if state.alive() else stopped
                            found[state.id] = (_runtime_of(runtime, state), state)
            for runtime, state in running.values():
                self._record_state(runtime, state)
            for runtime, state in stopped.values():
                if (state.id, state.pid) not in self._stopped_seen and state.id not in self._containers:
                    # it ran and exited between two reads: keep what its state says for late rows
                    self._record_state(runtime, state, running=False)
            self._stopped_seen = {(state.id, state.pid) for _, state in stopped.values()}
            with self._lock:
                gone = [cid for cid in self._runc if cid not in running and cid not in self._exited]
            for cid in gone:
                self._exit(cid)

    def _record_state(self, runtime: str, state: RuncState, running: bool = True) -> None:
        with self._lock:
            known = self._runc.get(state.id)
            if known is not None and known[1] == state and state.id in self._cgroup_of_cid:
                return   # nothing new (the periodic re-read)
            self._runc[state.id] = (runtime, state)
            if state.cgroup_path and self._mount and state.cgroup_path.startswith(self._mount):
                path = state.cgroup_path[len(self._mount):]
                self._state_cgroups[path] = state.id
                # the directory may be gone already (and its creation reported, or on its way)
                cgroup_id = id_of(self._mount, path) or self._cgroup_by_path.get(path, 0)
                if cgroup_id:
                    self._cgroup_of_cid[state.id] = cgroup_id
                    if cgroup_id not in self._cgroup_paths:
                        self._cgroup_paths[cgroup_id] = path
                        self._cgroup_by_path[path] = cgroup_id
        if known is None or known[1] != state:
            self._update(state.id, running=running)

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            kicked = self._kick.wait(POLL_SECONDS)
            self._kick.clear()
            if self._stop.is_set():
                return
            if self._cgroup_miss:
                self._cgroup_miss = False
                self._rescan_cgroups()
            self._refresh_states()
            self._forget_old()
            if kicked:
                time.sleep(0.01)  # a burst of misses or state changes costs one refresh per 10 ms

    # -- docker ----------------------------------------------------------------------------
    def _start_docker(self) -> None:
        client = DockerClient(self.options.docker_socket)
        # events are read from before the listing: a container started in between is not missed
        self._docker_since = str(int(time.time()))
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
        self._update(cid, running=bool(meta["pid"]))

    def _docker_events(self) -> None:
        while not self._stop.is_set():
            try:
                for event in self._docker.events(self._docker_since):
                    self._docker_event(event)
                    nanos = event.get("timeNano") or 0
                    if nanos:   # a reconnection replays what it missed
                        self._docker_since = f"{nanos // 10**9}.{nanos % 10**9:09d}"
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
