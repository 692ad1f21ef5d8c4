"""A plugin that breaks on request, to show broken plugins are reported and the others still load.

IG_SYNTHETIC_BREAK=1 makes its import raise ImportError; =exit, =interrupt or =generator make it
raise SystemExit(3), KeyboardInterrupt or GeneratorExit instead. IG_SYNTHETIC_BREAK_HOOK takes the
same values for its `ig_register_gadgets` hook. IG_SYNTHETIC_SLOW_IMPORT=PATH: the import writes
PATH, then takes up to 60 s (a Ctrl-C meanwhile is the user's).
"""

import os
import time

from igcore.api import hookimpl

FAULTS = {
    "1": lambda: ImportError("synthetic breakage requested by IG_SYNTHETIC_BREAK=1"),
    "exit": lambda: SystemExit(3),
    "interrupt": lambda: KeyboardInterrupt("raised by the plugin"),
    "generator": lambda: GeneratorExit("raised by the plugin"),
}


def _fault(variable: str) -> None:
    fault = FAULTS.get(os.environ.get(variable, ""))
    if fault is not None:
        raise fault()


_fault("IG_SYNTHETIC_BREAK")
if os.environ.get("IG_SYNTHETIC_SLOW_IMPORT"):
    with open(os.environ["IG_SYNTHETIC_SLOW_IMPORT"], "w") as mark:
        mark.write("importing\n")
    time.sleep(60)


@hookimpl
def ig_register_gadgets(register) -> None:
    _fault("IG_SYNTHETIC_BREAK_HOOK")
