"""The `ig` executable.

For `ig prometheus` (not --check), ig's stop and reload signals are blocked and the cgroup watch
begins compiling before anything else of ig loads: the compile runs without the GIL, beside the
Python that loading the command line, the config and the engine takes (bench/startup).
"""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["prometheus"] and not {"--check", "--help"} & set(args):
        from . import signals
        from .containers.cgroups import compile_watch_early

        signals.block()   # before the first thread: igcore.signals
        compile_watch_early()
    from .cli import main as cli_main

    cli_main()
