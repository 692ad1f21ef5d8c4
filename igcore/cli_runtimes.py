"""The commands' container-runtime options, derived from the runtime table (containers/runtimes.py):
`--runtimes` (its choices and default are the table's names) and one `--<word>-socketpath` for each
runtime with a socket. A new runtime gets its options without an edit here (docs/architecture.md)."""

from __future__ import annotations

import functools
import inspect
import os
from typing import Annotated, Callable

import typer

from .containers.runtimes import RUNTIMES, RuntimeTable
from .errors import ConfigError

RUNTIME_OPTIONS = "runtime_options"   # the parameter a decorated command declares, and receives


def runtime_options(runtimes: str, sockets: dict[str, str], table: RuntimeTable = RUNTIMES):
    """The RuntimeOptions that --runtimes and the socket options say; an unknown runtime is a ConfigError."""
    from .containers import RuntimeOptions

    chosen = tuple(r.strip() for r in runtimes.split(",") if r.strip())
    unknown = [r for r in chosen if r not in table]
    if unknown:
        raise ConfigError(f"--runtimes: unknown runtime {unknown[0]!r} (choose from {', '.join(table.names)})")
    return RuntimeOptions(runtimes=chosen, sockets=sockets, node_name=os.environ.get("NODE_NAME", ""), table=table)


def with_runtime_options(table: RuntimeTable = RUNTIMES) -> Callable[[Callable], Callable]:
    """Replaces a typer command's `runtime_options` parameter by the table's options. The command
    receives a callable that checks them and returns the RuntimeOptions: --check must not need the
    container code."""
    socket_params = {f"{r.option.replace('-', '_')}_socket": r for r in table.with_sockets()}
    options = [_option("runtimes", ",".join(table.names), "--runtimes",
                       "Container runtimes to watch, comma-separated.")]
    options += [_option(param, r.socket, f"--{r.option}-socketpath", f"{r.name} API socket.")
                for param, r in socket_params.items()]

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def with_options(**kwargs):
            runtimes = kwargs.pop("runtimes")
            sockets = {r.name: kwargs.pop(param) for param, r in socket_params.items()}
            return command(**kwargs, **{RUNTIME_OPTIONS: lambda: runtime_options(runtimes, sockets, table)})

        signature = inspect.signature(command, eval_str=True)   # typer reads the Annotated options
        params = list(signature.parameters.values())
        at = [p.name for p in params].index(RUNTIME_OPTIONS)
        with_options.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=params[:at] + options + params[at + 1:])
        return with_options

    return decorate


def _option(param: str, default: str, flag: str, help_text: str) -> inspect.Parameter:
    return inspect.Parameter(param, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                             annotation=Annotated[str, typer.Option(flag, help=help_text)])
