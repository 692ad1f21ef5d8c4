"""Containers of runc-style runtimes (containers/runtimes.py), from their state directories.

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
from ..runtimes import Runtime, Sign
from ..runc import RuncState, StateReader
from .base import SourceSink

log = logging.getLogger("igcore.containers")

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
COMPONENT = "containers.state-dirs"


class StateDirSource:
    name = "state-dirs"

    def __init__(self, options: RuntimeOptions, api_ready: Callable[[str], bool] = lambda runtime: False) -> None:
        self.options = options
        self.api_ready = api_ready   # the state roots of a runtime with an API source: read once that answered
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
        table = self.options.table
        roots = {root: table[runtime].state_depth for runtime, dirs in self._roots.items() for root in dirs}
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
        # a runtime with an API source: that source says whether it is in use
        return [runtime for runtime in self._roots if self.options.table[runtime].api_source is None]

    def _present_roots(self, sink: SourceSink) -> dict[str, tuple[str, ...]]:
        """The state roots of the runtimes that are installed; one warning for each that is not."""
        roots = {}
        for name, dirs in self.options.roots().items():
            runtime = self.options.table[name]
            if runtime.api_source is not None or self._installed(runtime, dirs, sink):
                roots[name] = dirs   # an API source's runtime: read only once that answered (api_ready)
        return roots

    def _installed(self, runtime: Runtime, dirs: tuple[str, ...], sink: SourceSink) -> bool:
        """Whether one of the runtime's signs (containers/runtimes.py) is there; if none is, says so once."""
        paths = [self.options.socket(runtime)] if Sign.SOCKET in runtime.signs else []
        paths += dirs if Sign.STATE_DIRS in runtime.signs else ()
        binary = Sign.BINARY in runtime.signs
        if any(os.path.exists(p) for p in paths) or (binary and shutil.which(runtime.binary, path=SBIN_PATH)):
            return True
        signs = [*paths, f"the {runtime.binary} binary"] if binary else paths
        sink.skip(f"{runtime.name}: not found ({', '.join(signs)}); skipped")
        return False

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
                if self.options.table[runtime].api_source is not None and not self.api_ready(runtime):
                    continue
                for root in roots:
                    for state in self._states.list(root):
                        if state.id not in running and state.id not in stopped:
                            # a state whose init exited (runc run -d, never deleted) is a stopped container
                            found = running if state.alive() else stopped
                            found[state.id] = (self.options.table.runtime_of(runtime, state.annotations), state)
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

