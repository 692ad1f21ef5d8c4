"""Containers of runc-style runtimes, read from their state directories (<root>/<id>/state.json)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class RuncState:
    id: str
    pid: int
    annotations: dict
    cgroup_path: str        # absolute path of the cgroup v2 directory, "" if unknown
    root: str
    start: int = field(default=0, compare=False)   # the init process's start time (clock ticks after boot)

    def alive(self) -> bool:
        """Whether the init process still runs (and is the same process, not a reused pid)."""
        if not self.pid:
            return False
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                stat = f.read()
        except OSError:
            return False
        fields = stat[stat.rfind(")") + 2:].split()
        # fields[0] is the state (field 3 of proc(5)); starttime is field 22; a zombie has exited
        return fields[0] != "Z" and (not self.start or int(fields[19]) == self.start)


def _annotations(config: dict) -> dict:
    # runc keeps the OCI annotations as "key=value" labels of its config (plus bundle=<path>).
    out = {}
    for label in config.get("labels") or []:
        key, sep, value = label.partition("=")
        if sep:
            out[key] = value
    return out


class MalformedState(ValueError):
    """A state.json that parses as JSON but not as a runc state."""


def read_state(path: str, root: str) -> RuncState | None:
    """The state at `path`; None if it is gone or half-written. MalformedState if it is not a runc state."""
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None   # gone, or being written: the next change is read again
    try:
        config = state.get("config") or {}
        paths = state.get("cgroup_paths") or {}
        return RuncState(
            id=str(state.get("id") or os.path.basename(os.path.dirname(path))),
            pid=int(state.get("init_process_pid") or 0),
            annotations=_annotations(config),
            cgroup_path=str(paths.get("") or paths.get("unified") or ""),
            root=root,
            start=int(state.get("init_process_start") or 0),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise MalformedState(f"{path}: not a runc state ({exc})") from exc


class StateReader:
    """Lists the states under runc-style roots, parsing a state.json again only when it changed."""

    def __init__(self, on_error: Callable[[Exception], None] = lambda exc: None) -> None:
        # a malformed state is cached as None: reported once per version of the file, then skipped
        self._cache: dict[str, tuple[tuple[int, int, int], RuncState | None]] = {}
        self.on_error = on_error

    def _read(self, path: str, root: str) -> RuncState | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            state = read_state(path, root)
        except MalformedState as exc:
            self._cache[path] = (stamp, None)
            self.on_error(exc)
            return None
        if state is not None:
            self._cache[path] = (stamp, state)
        return state

    def list(self, root: str) -> list[RuncState]:
        """States under a root; containerd's root has one more level (its namespaces)."""
        out, seen = [], set()
        try:
            entries = list(os.scandir(root))
        except OSError:
            entries = []
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            state_file = os.path.join(entry.path, "state.json")
            candidates = [state_file]
            if not os.path.exists(state_file):
                try:
                    candidates = [os.path.join(sub.path, "state.json") for sub in os.scandir(entry.path)
                                  if sub.is_dir(follow_symlinks=False)]
                except OSError:
                    candidates = []
            for path in candidates:
                state = self._read(path, root)
                seen.add(path)
                if state is not None:
                    out.append(state)
        for path in [p for p in self._cache if p.startswith(root + os.sep) and p not in seen]:
            del self._cache[path]
        return out
