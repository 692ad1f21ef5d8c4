"""The hooks a gadget plugin implements, and the typed `register` callback it is handed.

A plugin module exposes a function decorated with `igcore.api.hookimpl`:

    @hookimpl
    def ig_register_gadgets(register: Register) -> None:
        register(category="trace", name="exec", description="...", columns=SCHEMA, factory=ExecGadget)

`register` takes the keyword arguments of `Register.__call__`; the core fills in the distribution
and version, validates each gadget and detects name collisions (validation stays in the core).
"""

from __future__ import annotations

from typing import Callable, Literal, Protocol

import pluggy

from .columns import Schema
from .gadgets import Category, ContainerKey, Gadget, GadgetContext

PROJECT = "ig"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """What `ig_register_gadgets` is handed: call it once per gadget the plugin provides.

    category: "trace" (rows streamed to a sink) or "snapshot" (rows returned at scrape time).
    name: the gadget's name within its category, as users write it in `gadget:`.
    columns: the schema, built with `Schema.with_container_columns`.
    factory: builds one gadget instance from the core's `GadgetContext`.
    container_key: the column the core finds a row's container by; it must be one of
        "cgroup_id", "mntns", "netns" and a column of `columns`, or the plugin is refused.
    Raises ValueError or TypeError for a bad argument: the whole plugin is then listed as broken.
    """

    def __call__(
        self,
        *,
        category: Category | Literal["trace", "snapshot"],
        name: str,
        description: str,
        columns: Schema,
        factory: Callable[[GadgetContext], Gadget],
        container_key: ContainerKey = "cgroup_id",
    ) -> None: ...


@hookspec
def ig_register_gadgets(register: Register) -> None:
    """Call `register(...)` once per gadget this plugin provides."""
