"""Container sources, and the set the options choose (as Inspektor Gadget's collection options do)."""

from __future__ import annotations

import time
from typing import Callable

from ..model import RuntimeOptions, Windows
from ..pod_source import pod_watch_for
from .base import EVERY_CONTAINER, ContainerSource, SourceSink
from .cgroup_tracker import CgroupTracker
from .docker_events import DockerSource
from .node_name import NodeNameSource
from .state_dirs import StateDirSource

__all__ = ["EVERY_CONTAINER", "CgroupTracker", "ContainerSource", "DockerSource", "NodeNameSource",
           "SourceSink", "StateDirSource", "host_sources"]


def host_sources(options: RuntimeOptions, *, clock: Callable[[], float] = time.monotonic,
                 windows: Windows = Windows(), compiler=None) -> list[ContainerSource]:
    """The node name, the cgroup tracker, the state directories of the chosen runtimes, the own
    source of each chosen runtime that has one (containers/runtimes.py: docker's Engine API), and the
    pod watch when there is an API server to use. Started in this order: warnings come out in the
    options' order."""
    apis = {r.name: r.api_source(r, options.socket(r)) for r in options.chosen() if r.api_source is not None}
    sources: list[ContainerSource] = [
        NodeNameSource(options.node_name),
        CgroupTracker(clock=clock, windows=windows, compiler=compiler),
        StateDirSource(options, api_ready=lambda runtime: runtime in apis[runtime].runtimes_in_use()),
        *apis.values(),
    ]
    watch = pod_watch_for(options.kubeconfig, options.node_name)
    if watch is not None:
        sources.append(watch)
    return sources
