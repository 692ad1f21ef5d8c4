"""What a gadget is to the core: a spec registered by a plugin, and the two base classes.

A gadget knows nothing of metrics. It turns kernel records into rows: plain dicts keyed by the
canonical column names of its schema. Every row a gadget hands over carries every one of its own
columns (use `Kind.default()` where a value is unknown); the core adds the container columns.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Literal, Protocol, TypeVar

from .columns import Schema
from .isolation import GadgetThreads



class ProgramCompiler(Protocol):
    """What a context holds of ig's compiler (igcore.bpf.Compiler sits a floor above this module)."""

    def compile(self, text: str, cflags: list[str] | None = None, name: str = "gadget", *,
                kernel: Any = None) -> Any: ...

    def release_memory(self) -> None: ...

Row = dict
Sink = Callable[[list[Row]], None]
T = TypeVar("T")


class Category(str, Enum):
    TRACE = "trace"
    SNAPSHOT = "snapshot"


# Which column the core uses to find the container a row came from.
ContainerKey = Literal["cgroup_id", "mntns", "netns"]


@dataclass
class GadgetStats:
    """Counters a running gadget keeps; the core exposes them as self metrics.

    `extra` holds gadget-specific counters (name -> value), exposed as
    `ig_gadget_<name>_total{gadget=...}`; keep the names short snake_case.
    """

    events_received: int = 0
    events_lost: int = 0
    decode_errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)


@dataclass
class GadgetContext:
    """What the core hands a gadget's factory."""

    # Host processes are wanted too (`--host`); a gadget may use it to skip work, never to drop rows.
    host: bool = False
    # Per-gadget options (e.g. `ringbuf_pages`).
    options: dict = field(default_factory=dict)
    # The metrics the core aggregates inside this gadget's program and the window in which it counts
    # (igcore.kernel.KernelProgram), or None: `compile_program(..., ctx=self.ctx)` compiles them in
    # at IG_EMIT (a reload hands over between two programs with the window).
    kernel: object = None
    # ig's BPF compiler (igcore.bpf.Compiler), which `compile_program(..., ctx=self.ctx)` uses: the
    # engine hands every gadget the one the `ig` executable built; a gadget made outside ig (a
    # plugin's test) has None, and compile_program gives its context a compiler of its own.
    compiler: ProgramCompiler | None = field(default=None, repr=False, compare=False)
    # The gadget's threads: the core watches those started through `spawn` (docs/plugins.md, Your threads).
    threads: GadgetThreads = field(default_factory=lambda: GadgetThreads("unnamed"), repr=False, compare=False)

    def spawn(self, target: Callable[..., Any], *, name: str, args: tuple = ()) -> threading.Thread:
        """Start `target(*args)` on a daemon thread of the gadget. If it raises, or returns before
        the gadget's `stop()`, the gadget counts as failed (`thread_died`); a thread started any
        other way is not watched."""
        return self.threads.spawn(target, name=name, args=args)

    def run_in_thread(self, call: Callable[[], T], *, name: str) -> T:
        """`call()` on a short thread of its own, waited for: what it returns, or its exception
        raised here. For work that changes what only its thread sees, such as entering a network
        namespace; the caller's thread is left as it was."""
        return self.threads.run_in_thread(call, name=name)


class Gadget(ABC):
    stats: GadgetStats

    def __init__(self, ctx: GadgetContext) -> None:
        self.ctx = ctx
        self.stats = GadgetStats()


class TraceGadget(Gadget):
    """Streams rows to a sink from `start()` until `stop()`.

    `start` must return once the kernel side is attached (so no event after `start` returns is
    missed) and deliver rows from its own thread(s). `stop` detaches and joins, idempotently.
    """

    @abstractmethod
    def start(self, sink: Sink) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...


class SnapshotGadget(Gadget):
    """Returns the rows of the current state when asked; called from scrape threads."""

    @abstractmethod
    def snapshot(self) -> list[Row]: ...

    def close(self) -> None:
        """Release what the gadget holds; default nothing."""


class NetnsAware:
    """Mixin for gadgets that watch network namespaces: the core tells them which ones exist."""

    def add_netns(self, netns: int, path: str) -> None:
        """A namespace (inode `netns`, openable at `path`, e.g. /proc/<pid>/ns/net) is in use."""

    def remove_netns(self, netns: int) -> None:
        """The namespace is gone."""


@dataclass(frozen=True)
class GadgetSpec:
    """A gadget as registered by its plugin."""

    category: Category
    name: str
    description: str
    columns: Schema
    factory: Callable[[GadgetContext], Gadget]
    container_key: ContainerKey = "cgroup_id"
    # Filled by the plugin manager from the entry point's distribution.
    distribution: str = ""
    version: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.category.value, self.name)


class StopFlag(threading.Event):
    """A readable name for the event a gadget's poll loop watches."""
