"""The `ig` executable: builds ig's one BPF compiler and blocks ig's stop and reload signals, then
hands over to the command line (igcore.cli), which passes the compiler down.

The signals are blocked here, before the first thread starts, for the commands that wait for them
(`ig prometheus`, `ig trace`): every thread inherits the mask, so only the main thread takes them
(igcore.signals). For `ig prometheus` (not --check), the cgroup watch begins compiling before
anything else of ig loads: the compile runs without the GIL, beside the Python that loading the
command line, the config and the engine takes (bench/startup).
"""

from __future__ import annotations

import sys

# The commands that load eBPF programs, and those of them that wait for a stop signal.
COMPILING = {"prometheus", "trace", "snapshot"}
WAITING = {"prometheus", "trace"}


def main() -> None:
    args = sys.argv[1:]
    command = args[0] if args else ""
    compiler = None
    if command in COMPILING and not {"--check", "--help"} & set(args):
        from . import signals
        from .bpf.compiler import Compiler

        if command in WAITING:
            signals.block()   # before the first thread
        compiler = Compiler()
        if command == "prometheus":
            from .containers.cgroups import compile_watch_early

            compile_watch_early(compiler)
    from .cli import main as cli_main

    cli_main(compiler)
