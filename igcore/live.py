"""`ig trace` and `ig snapshot`: show a gadget's enriched rows, so users see columns while writing a config."""

from __future__ import annotations

import json
import textwrap
import logging
import threading

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import logs, signals
from .columns import CONTAINER_COLUMN_NAMES
from .errors import ConfigError, IgError, RuntimeFailure, describe
from .gadgets import Category, GadgetContext, GadgetSpec, NetnsAware
from .livetable import Layout, layout, one_line
from .plugins import load_catalog
from .supervisor import Abandoned, Supervisor

# Columns that are noise in a terminal by default; `--columns` can still ask for them.
_HIDDEN_BY_DEFAULT = {"timestamp", "cgroup_id", "mntns", "netns"}


def _spec(category: Category, name: str) -> GadgetSpec:
    catalog = load_catalog()
    spec = catalog.get(category.value, name)
    if spec is None:
        installed = ", ".join(catalog.names(category.value)) or "none"
        raise ConfigError(f"no {category.value} gadget named {name!r} is installed (installed: {installed})")
    return spec


def _columns(spec: GadgetSpec, wanted: str | None) -> list[str]:
    if not wanted:
        own = [c.name for c in spec.columns if c.name not in CONTAINER_COLUMN_NAMES and c.name not in _HIDDEN_BY_DEFAULT]
        own.sort(key=lambda name: name == "args")   # the long one last: it may run past the line
        return ["k8s.container", *own]
    chosen = []
    for name in (w.strip() for w in wanted.split(",") if w.strip()):
        column = spec.columns.get(name)
        if column is None:
            hint = spec.columns.closest(name)
            raise ConfigError(f"--columns: unknown column {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")
                              + f"; columns: {', '.join(spec.columns.names)}")
        chosen.append(column.name)
    return chosen


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
    return layout([(c, spec.columns.get(c).kind.value) for c in columns], width)


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


def run_trace(name, filters, output, columns, host, timeout, runtime_options, console: Console, compiler) -> None:
    from .containers import ContainerCollection, Enricher

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
    containers = ContainerCollection.for_host(runtime_options, compiler=compiler)
    containers.start()
    try:
        gadget = _plugin_call(f"gadget trace {name} failed to start", spec.factory,
                              GadgetContext(host=host, compiler=compiler))
    except BaseException:
        containers.stop()
        raise
    enricher = Enricher(containers, spec.container_key, host, sink)
    added = lambda c: gadget.add_netns(c.netns, f"/proc/{c.pid}/ns/net")  # noqa: E731
    removed = lambda c: gadget.remove_netns(c.netns)  # noqa: E731
    subscribed, supervisor = False, Supervisor()
    try:
        # on a thread of its own: Ctrl-C during a start() that hangs still ends ig (igcore.supervisor)
        supervisor.run(lambda: _plugin_call(f"gadget trace {name} failed to start", gadget.start, enricher),
                       "the gadget's start")
        if isinstance(gadget, NetnsAware):
            subscribed = True  # before: subscribe registers first, then calls `added`, which may raise
            containers.subscribe(added, removed)
        if supervisor.stop_signal is None:
            signals.wait(timeout or None)
    except Abandoned:
        raise   # the start still runs: ig exits without touching what it holds (cli._exit_now)
    except BaseException:
        _stop_trace(gadget, enricher, containers, added, removed, subscribed)
        raise
    _stop_trace(gadget, enricher, containers, added, removed, subscribed)
    if gadget.stats.events_lost:
        _note(console, f"{gadget.stats.events_lost} events lost (ring buffer full)", "yellow", logging.WARNING)
    if not printer.shown and output != "json":
        _empty_hint(console, host, "events")


def _stop_trace(gadget, enricher, containers, added, removed, subscribed: bool) -> None:
    # The reverse of the start: no container event may reach a stopped gadget, and the enricher
    # may still ask the collection about held rows, so the collection stops last.
    if subscribed:
        containers.unsubscribe(added, removed)
    gadget.stop()  # also after a failed start(): it may have attached part of itself
    enricher.close()
    containers.stop()


def run_snapshot(name, filters, output, columns, host, runtime_options, console: Console, compiler) -> None:
    from .containers import ContainerCollection, Enricher

    spec = _spec(Category.SNAPSHOT, name)
    predicate = _filter(spec, filters)
    _check_output(output)
    shown = _columns(spec, columns)
    containers = ContainerCollection.for_host(runtime_options, compiler=compiler)
    containers.start()
    try:
        gadget = _plugin_call(f"gadget snapshot {name} failed to start", spec.factory,
                              GadgetContext(host=host, compiler=compiler))
        try:
            taken = _plugin_call(f"gadget snapshot {name} failed", gadget.snapshot)
        finally:
            try:
                gadget.close()
            except Exception as exc:  # the rows, or the snapshot's own error, matter more
                logging.getLogger("igcore").warning("gadget snapshot %s failed to close: %s: %s",
                                                    name, type(exc).__name__, exc)
        rows = Enricher(containers, spec.container_key, host, lambda rows: None).enrich_now(taken)
    finally:
        containers.stop()
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
