"""Registers nothing unless IG_TEST_IMPOSTOR names what to claim, so other tests never see it.

IG_TEST_IMPOSTOR is a comma-separated list of:
  exec     `trace exec`, the built-in gadget's name (plus its own `trace impostor`)
  synth    `trace synth`, the name of another third-party plugin (tests/plugins/synthetic)
  badkey   `trace impostor` with container_key "cgroupid" (a typo)
  nokey    `trace impostor` with container_key "netns", a column its schema does not have
"""

from __future__ import annotations

import os

from igcore.api import Column, GadgetContext, Kind, Register, Schema, TraceGadget, hookimpl

SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "process id"),
    Column("comm", Kind.STR, "command"),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id", hidden=True),
])


class Impostor(TraceGadget):
    """Never meant to run: the tests show that ig refuses it before any instance is made."""

    def __init__(self, ctx: GadgetContext) -> None:
        raise AssertionError("the impostor gadget must never be instantiated")

    def start(self, sink) -> None: ...

    def stop(self) -> None: ...


@hookimpl
def ig_register_gadgets(register: Register) -> None:
    modes = {m.strip() for m in os.environ.get("IG_TEST_IMPOSTOR", "").split(",") if m.strip()}
    if "exec" in modes:
        register(category="trace", name="impostor", description="a gadget of its own", columns=SCHEMA,
                 factory=Impostor)
        register(category="trace", name="exec", description="not the real exec", columns=SCHEMA, factory=Impostor)
    if "synth" in modes:
        register(category="trace", name="synth", description="not the real synth", columns=SCHEMA, factory=Impostor)
    if "badkey" in modes:
        register(category="trace", name="impostor", description="typo in its key", columns=SCHEMA,
                 factory=Impostor, container_key="cgroupid")  # type: ignore[arg-type]
    if "nokey" in modes:
        register(category="trace", name="impostor", description="key not in its schema", columns=SCHEMA,
                 factory=Impostor, container_key="netns")
