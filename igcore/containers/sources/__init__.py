"""Container sources, and the set the options choose (as Inspektor Gadget's collection options do)."""

from __future__ import annotations

import time
from typing import Callable

from ..model import RuntimeOptions, Windows
from .base import EVERY_CONTAINER, ContainerSource, SourceSink
from .cgroup_tracker import CgroupTracker
from .docker_events import DockerSource
from .node_name import NodeNameSource
from .state_dirs import StateDirSource

__all__ = ["EVERY_CONTAINER", "CgroupTracker", "ContainerSource", "DockerSource", "NodeNameSource",
           "SourceSink", "StateDirSource", "host_sources"]


def host_sources(options: RuntimeOptions, *, clock: Callable[[], float] = time.monotonic,
                 windows: Windows = Windows(), compiler=None) -> list[ContainerSource]:
    """The node name, the cgroup tracker, the state directories of the chosen runtimes and, if chosen,
    docker's Engine API. Started in this order: warnings come out in the options' order."""
    docker = DockerSource(options.docker_socket) if "docker" in options.runtimes else None
    sources: list[ContainerSource] = [
        NodeNameSource(options.node_name),
        CgroupTracker(clock=clock, windows=windows, compiler=compiler),
        StateDirSource(options, docker_ready=lambda: docker is not None and docker.connected),
    ]
    if docker is not None:
        sources.append(docker)
    return sources
