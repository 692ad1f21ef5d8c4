"""Containers of runc-style runtimes (docker, containerd, cri-o, plain runc), from their state directories.

A runtime writes <root>/<id>/state.json (init pid, OCI annotations with Kubernetes names, cgroup
path) before the container's process runs; the roots are watched with inotify and re-read on every
refresh. A state that cannot be parsed is skipped and counted once (ig_loop_errors_total), never a
reason to stop reading the others.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from typing import Callable

from ...health import loop_errors
from ..inotify import StateDirWatcher
from ..merge import STATE, StateFacts
from ..model import RuntimeOptions
from ..runc import RuncState, StateReader
from .base import SourceSink

log = logging.getLogger("igcore.containers")

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
COMPONENT = "containers.state-dirs"


class StateDirSource:
    name = "state-dirs"

    def __init__(self, options: RuntimeOptions, docker_ready: Callable[[], bool] = lambda: False) -> None:
        self.options = options
        self.docker_ready = docker_ready   # docker's state root is read only once its Engine API answered
        self._sink: SourceSink | None = None
        self._roots: dict[str, tuple[str, ...]] = {}     # runtime -> state roots read
        self._refresh_lock = threading.Lock()            # read by one thread at a time
        self._states = StateReader(on_error=lambda exc: loop_errors.record(COMPONENT, exc))
        self._reported: set[str] = set()                 # ids reported and not exited since
        self._stopped_seen: set[tuple[str, int]] = set()
        self._watch: StateDirWatcher | None = None

    def start(self, sink: SourceSink) -> None:
        self._sink = sink
        self._roots = self._present_roots(sink)
        depth = {"containerd": 2}
        roots = {root: depth.get(runtime, 1) for runtime, dirs in self._roots.items() for root in dirs}
        if not roots:
            return
        try:
            self._watch = StateDirWatcher(roots, self._changed)
        except OSError as exc:
            log.info("state directories are not watched (%s); re-reading them on every refresh", exc)
            return
        self._watch.start()

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()
            self._watch = None

    def runtimes_in_use(self) -> list[str]:
        return [runtime for runtime in self._roots if runtime != "docker"]   # docker's: see DockerSource

    def _present_roots(self, sink: SourceSink) -> dict[str, tuple[str, ...]]:
        """The state roots of the runtimes that are installed; one warning for each that is not."""
        roots = {}
        for runtime, dirs in self.options.roots().items():
            if runtime == "docker":
                roots[runtime] = dirs   # read only once the Engine API answered (docker_ready)
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
                sink.skip(f"{runtime}: not found ({', '.join(signs)}); skipped")
        return roots

    def _changed(self) -> None:
        """From the inotify thread: read the new state at once, a `runc run` may last milliseconds."""
        try:
            self.refresh()
        except Exception as exc:  # the watch must go on
            loop_errors.record("containers.state-watch", exc)

    def refresh(self) -> None:
        sink = self._sink
        if sink is None:
            return
        with self._refresh_lock:
            running: dict[str, tuple[str, RuncState]] = {}
            stopped: dict[str, tuple[str, RuncState]] = {}
            for runtime, roots in self._roots.items():
                if runtime == "docker" and not self.docker_ready():
                    continue
                for root in roots:
                    for state in self._states.list(root):
                        if state.id not in running and state.id not in stopped:
                            # a state whose init exited (runc run -d, never deleted) is a stopped container
                            found = running if state.alive() else stopped
                            found[state.id] = (runtime_of(runtime, state), state)
            for runtime, state in running.values():
                self._reported.add(state.id)
                sink.report(STATE, state.id, StateFacts(runtime, state), running=True)
            for runtime, state in stopped.values():
                if (state.id, state.pid) not in self._stopped_seen and state.id not in self._reported:
                    # it ran and exited between two reads: keep what its state says for late rows
                    self._reported.add(state.id)
                    sink.report(STATE, state.id, StateFacts(runtime, state))
            self._stopped_seen = {(state.id, state.pid) for _, state in stopped.values()}
            for cid in [cid for cid in self._reported if cid not in running]:
                self._reported.discard(cid)
                sink.report_exit(cid)


def runtime_of(root_runtime: str, state: RuncState) -> str:
    if root_runtime in ("cri-o", "runc"):
        # cri-o and plain runc share /run/runc: cri-o's containers carry its annotations.
        if any(k.startswith("io.kubernetes.cri-o.") for k in state.annotations):
            return "cri-o"
        return "runc"
    return root_runtime
