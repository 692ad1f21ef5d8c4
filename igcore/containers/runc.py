"""Containers of runc-style runtimes, read from their state directories (<root>/<id>/state.json)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class RuncState:
    id: str
    pid: int
    annotations: dict
    cgroup_path: str        # absolute path of the cgroup v2 directory, "" if unknown
    root: str


def _annotations(config: dict) -> dict:
    # runc keeps the OCI annotations as "key=value" labels of its config (plus bundle=<path>).
    out = {}
    for label in config.get("labels") or []:
        key, sep, value = label.partition("=")
        if sep:
            out[key] = value
    return out


def read_state(path: str, root: str) -> RuncState | None:
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    config = state.get("config") or {}
    paths = state.get("cgroup_paths") or {}
    return RuncState(
        id=state.get("id") or os.path.basename(os.path.dirname(path)),
        pid=int(state.get("init_process_pid") or 0),
        annotations=_annotations(config),
        cgroup_path=paths.get("") or paths.get("unified") or "",
        root=root,
    )


def list_states(root: str) -> list[RuncState]:
    """States under a root; containerd's root has one more level (its namespaces)."""
    out = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return out
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        state_file = os.path.join(entry.path, "state.json")
        if os.path.exists(state_file):
            state = read_state(state_file, root)
            if state:
                out.append(state)
            continue
        try:
            nested = list(os.scandir(entry.path))
        except OSError:
            continue
        for sub in nested:
            state = read_state(os.path.join(sub.path, "state.json"), root) if sub.is_dir() else None
            if state:
                out.append(state)
    return out
