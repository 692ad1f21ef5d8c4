"""`ig trace` and `ig snapshot`: show a gadget's enriched rows, so users see columns while writing a config."""

from __future__ import annotations

import json
import textwrap
import logging
import threading
import time

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import logs, signals
from .columns import CONTAINER_COLUMN_NAMES
from .containers.pod_source import use_pod_columns, wait_for_pods
from .containers.sources.kubeapi import in_a_pod
from .errors import ConfigError, IgError, RuntimeFailure, describe
from .gadgets import Category, GadgetSpec
from .livetable import Layout, layout, one_line
from .plugins import load_catalog
from .supervisor import Abandoned, Supervisor


def _spec(category: Category, name: str) -> GadgetSpec:
    catalog = load_catalog()
    spec = catalog.get(category.value, name)
    if spec is None:
        installed = ", ".join(catalog.names(category.value)) or "none"
        raise ConfigError(f"no {category.value} gadget named {name!r} is installed (installed: {installed})")
    return spec


def _columns(spec: GadgetSpec, wanted: str | None) -> list[str]:
    if not wanted:
        # Column.hidden: noise in a terminal (a raw id, a timestamp); `--columns` can still ask for it.
        own = [c.name for c in spec.columns if c.name not in CONTAINER_COLUMN_NAMES and not c.hidden]
        own.sort(key=lambda name: name == "args")   # the long one last: it may run past the line
        # in a pod (the node agent's), the pod watch knows the owners: shown by default
        return ["k8s.container", *(("k8s.owner.kind", "k8s.owner.name") if in_a_pod() else ()), *own]
    chosen = []
    for name in (w.strip() for w in wanted.split(",") if w.strip()):
        column = spec.columns.get(name)
        if column is None:
            hint = spec.columns.closest(name)
            raise ConfigError(f"--columns: unknown column {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")
                              + f"; columns: {', '.join(spec.columns.names)}")
        chosen.append(column.name)
    return chosen


def _use_pod_columns(containers, spec: GadgetSpec, shown: list[str], filters: list[str] | None,
                     runtime_options, asked: bool) -> None:
    """The pod columns shown or filtered on are held (containers/pod_source.py); a missing source
    is said only of those the user named (`asked`: --columns), not of -o json's every column."""
    from .selectors import compile_selector

    filtered = [compile_selector(f, spec.columns).column for f in filters or ()]
    use_pod_columns(containers, [*shown, *filtered], runtime_options.runtimes,
                    named=[*(shown if asked else ()), *filtered])


def _filter(spec: GadgetSpec, filters: list[str]):
    from .selectors import SelectorError, compile_selectors

    try:
        return compile_selectors(filters, spec.columns)
    except SelectorError as exc:
        raise ConfigError(f"--filter: {exc}") from exc


OUTPUTS = ("table", "wide", "json")


def _check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise ConfigError(f"--output {output!r}: choose {', '.join(OUTPUTS)}")


def _layout(spec: GadgetSpec, columns: list[str], output: str, console: Console, borders: int = 0) -> Layout:
    """The table's layout for the terminal's width (`wide`: any width)."""
    width = None if output == "wide" else max(console.width - borders, 1)
    return layout([column for c in columns if (column := spec.columns.get(c)) is not None], width)


def _note(notes: Console, text: str, style: str = "dim", level: int = logging.INFO) -> None:
    """A note on stderr beside the rows: a record with --log-format logfmt or json (igcore.logs)."""
    if logs.structured():
        logs.announce(text, level, "igcore.live")
    else:
        notes.print(Text(textwrap.fill(text, notes.width), style=style), soft_wrap=True)   # no trailing blanks


def _say_left_out(table: Layout, console: Console, notes: Console) -> None:
    if table.left_out:
        _note(notes, f"left out to fit {console.width} columns: {', '.join(table.left_out)} (-o wide shows all)")


class _Printer:
    """Streams rows as lines of a table laid out once (igcore.livetable) or as JSON lines."""

    def __init__(self, table: Layout | None) -> None:
        self.table = table   # None: JSON lines
        self.lock = threading.Lock()
        self.shown = 0

    def __call__(self, rows: list[dict]) -> None:
        with self.lock:
            for row in rows:
                self.shown += 1
                if self.table is None:
                    print(json.dumps(row, default=str), flush=True)
                else:
                    print(self.table.line([str(row.get(c, "")) for c in self.table.columns]), flush=True)


def _plugin_call(what: str, call, *args):
    """A plugin's bug is reported in one line, as `ig prometheus` reports it; ig's own errors pass."""
    try:
        return call(*args)
    except IgError:
        raise
    except Exception as exc:
        raise RuntimeFailure(f"{what}: {describe(exc)}") from exc


def _empty_hint(console: Console, host: bool, what: str) -> None:
    if not host:
        _note(console, f"no {what} from containers; add --host to include host processes")


def _live_run(spec: GadgetSpec, host: bool, runtime_options, compiler, **kwargs):
    """The gadget run `ig prometheus` makes (igcore.engine), checking rows and watching threads alike."""
    from .containers import ContainerCollection
    from .engine import EngineOptions, GadgetRun

    containers = ContainerCollection.for_host(runtime_options, compiler=compiler)
    run = GadgetRun(spec, containers, EngineOptions(host=host, runtimes=runtime_options), compiler=compiler, **kwargs)
    return run, containers


def _stop(run, containers) -> None:
    # The reverse of the start: the run unsubscribes the gadget, stops it and closes the enricher,
    # which may still ask the collection about held rows, so the collection stops last.
    run.stop()
    containers.stop()


def _started(run) -> None:
    if run.failure is not None:   # not `running`: a thread that dies from now on is `_wait_while_running`'s
        raise run.start_error()


# How often `ig trace` looks whether the gadget still runs, between two waits for a signal.
WATCH_SECONDS = 0.2


def _wait_while_running(run, timeout: float | None) -> None:
    """Until a signal, `timeout` seconds, or the gadget's end (a thread of it died: ig ends with it)."""
    deadline = time.monotonic() + timeout if timeout else None
    while run.running:
        left = WATCH_SECONDS if deadline is None else min(WATCH_SECONDS, deadline - time.monotonic())
        if left <= 0 or signals.wait(left) is not None:
            return
    raise RuntimeFailure(f"gadget {run.label}: {run.failure_message}").naming(gadget=run.label, reason=run.failure)


def run_trace(name, filters, output, columns, host, timeout, runtime_options, console: Console, compiler) -> None:
    spec = _spec(Category.TRACE, name)
    predicate = _filter(spec, filters)
    _check_output(output)
    notes = Console(stderr=True, highlight=False)
    table = None if output == "json" else _layout(spec, _columns(spec, columns), output, console)
    printer = _Printer(table)
    # At once, before the gadget compiles and long before a first event may come: the user sees
    # what runs and why the screen may stay empty.
    if table is not None:
        print(table.header(), flush=True)
    _note(notes, "waiting for events" + ("" if host else " (containers only; --host adds host processes)"))
    if table is not None:
        _say_left_out(table, console, notes)
    sink = printer if predicate is None else (lambda rows: printer([r for r in rows if predicate(r)]))
    run, containers = _live_run(spec, host, runtime_options, compiler, rows_to=sink, report_deaths=False)
    _use_pod_columns(containers, spec, table.columns if table else spec.columns.names, filters, runtime_options,
                     asked=bool(columns))
    containers.start()
    supervisor = Supervisor()
    try:
        wait_for_pods(containers)   # inside: an interrupt here still stops the container sources
        # on a thread of its own: Ctrl-C during a start() that hangs still ends ig (igcore.supervisor)
        supervisor.run(run.start, "the gadget's start")
        _started(run)
        if supervisor.stop_signal is None:
            _wait_while_running(run, timeout)
    except Abandoned:
        raise   # the start still runs: ig exits without touching what it holds (cli._exit_now)
    except BaseException:
        _stop(run, containers)
        raise
    _stop(run, containers)
    if run.stats.events_lost:
        _note(console, f"{run.stats.events_lost} events lost (ring buffer full)", "yellow", logging.WARNING)
    if not printer.shown and output != "json":
        _empty_hint(console, host, "events")


def run_snapshot(name, filters, output, columns, host, runtime_options, console: Console, compiler) -> None:
    spec = _spec(Category.SNAPSHOT, name)
    predicate = _filter(spec, filters)
    _check_output(output)
    shown = _columns(spec, columns)
    run, containers = _live_run(spec, host, runtime_options, compiler)
    _use_pod_columns(containers, spec, spec.columns.names if output == "json" else shown, filters, runtime_options,
                     asked=bool(columns))
    containers.start()
    try:
        wait_for_pods(containers)
        run.start()
        _started(run)
        rows = _plugin_call(f"gadget snapshot {name} failed", run.take_snapshot)
    finally:
        _stop(run, containers)
    if predicate is not None:
        rows = [r for r in rows if predicate(r)]
    if output == "json":
        for row in rows:
            print(json.dumps(row, default=str))
        return
    if output == "wide":   # as wide as the values: a console of its own, a print cannot widen one
        console = Console(width=1 << 16, highlight=False, force_terminal=console.is_terminal,
                          no_color=console.no_color)
    console.print(_snapshot_table(spec, shown, output, console, rows))
    if not rows:
        _empty_hint(console, host, "rows")


def _snapshot_table(spec: GadgetSpec, shown: list[str], output: str, console: Console, rows: list[dict]) -> Table:
    """A bordered table whose rows keep one line each: laid out as `ig trace`'s, less the room the
    borders take beyond its gaps (1 character a column and 3), for as many columns as stay."""
    fitted = _layout(spec, shown, output, console, len(shown) + 3)
    for count in range(len(shown) - 1, len(fitted.columns), -1):   # fewer borders: room for more?
        wider = _layout(spec, shown, output, console, count + 3)
        if len(wider.columns) == count:
            fitted = wider
            break
    _say_left_out(fitted, console, Console(stderr=True, highlight=False))
    table = Table()
    for column, width in zip(fitted.columns, fitted.widths):
        table.add_column(column.upper(), no_wrap=True, overflow="ellipsis",
                         width=None if fitted.wide else width, min_width=len(column))
    for row in rows:   # Text: a value is shown as it is, never read as rich markup
        table.add_row(*(Text(one_line(str(row.get(c, "")))) for c in fitted.columns))
    return table
