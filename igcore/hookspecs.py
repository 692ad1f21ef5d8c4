"""The hooks a gadget plugin implements.

A plugin module exposes a function decorated with `igcore.hookimpl`:

    @hookimpl
    def ig_register_gadgets(register):
        register(category="trace", name="exec", description="...", columns=SCHEMA, factory=ExecGadget)

`register` takes the keyword arguments of `igcore.gadgets.GadgetSpec` (less distribution and
version, which the core fills in). Validation and duplicate detection stay in the core.
"""

import pluggy

PROJECT = "ig"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ig_register_gadgets(register) -> None:
    """Call `register(...)` once per gadget this plugin provides."""
