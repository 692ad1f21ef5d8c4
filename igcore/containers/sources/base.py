"""The interface between container sources and the collection they feed.

A source (the docker Engine API, runc-style state directories, the cgroup tracker, the node name)
is started with the collection as its sink and tells it what it learns; the collection asks it to
`refresh` when a row could not be resolved and every `Windows.poll` seconds. Sources never see each
other: the collection merges what they say (merge.merge).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

EVERY_CONTAINER = ""   # the container id of facts about every container on this node (its name)


class SourceSink(Protocol):
    def report(self, source: str, cid: str, facts: object, running: bool = False) -> None:
        """`source` says `facts` of container `cid`; `running`: it (re)started."""

    def report_exit(self, cid: str) -> None:
        """Container `cid` exited."""

    def report_cgroup(self, cgroup_id: int, path: str, born: bool) -> None:
        """A cgroup exists at `path` below the cgroup2 mount; `born`: it was just created."""

    def warn(self, message: str) -> None:
        """A runtime the options chose is there but cannot be used (one sentence, a warning)."""

    def skip(self, message: str) -> None:
        """A runtime the options chose is not installed here: nothing is wrong, said at info level."""

    def kick(self) -> None:
        """Something changed: refresh the sources soon."""


class ContainerSource(Protocol):
    name: str   # names its loop in ig_loop_errors_total (component "containers.<name>")

    def start(self, sink: SourceSink) -> None:
        """Connect, report what exists now, start watching. Called again after `stop`."""

    def refresh(self) -> None:
        """Re-read what can be re-read (from the collection's refresh loop)."""

    def stop(self) -> None:
        """Stop watching; `start` may be called again."""


@runtime_checkable
class RuntimeSource(ContainerSource, Protocol):
    """A source that reads container runtimes (the node name and the cgroup tracker do not)."""

    def runtimes_in_use(self) -> list[str]:
        """The runtimes this source reads, once started (none: it attributes no container)."""
