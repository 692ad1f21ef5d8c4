"""`ig trace` and `ig snapshot`: show a gadget's enriched rows, so users see columns while writing a config."""

from __future__ import annotations

import json
import logging
import threading

from rich.console import Console
from rich.table import Table

from . import signals
from .columns import CONTAINER_COLUMN_NAMES
from .errors import ConfigError, IgError, RuntimeFailure, describe
from .gadgets import Category, GadgetContext, GadgetSpec, NetnsAware
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


# Widths of table columns by kind: fixed from the first line, so every line aligns; a longer value
# is cut with "…", except in the last column (put `args` last), which takes the rest of the line.
_WIDTH = {"str": 16, "int": 7, "uint": 10, "float": 10, "bool": 5}
_WIDE = {"k8s.container": 20, "k8s.pod": 24, "k8s.namespace": 16, "name": 28, "addresses": 24,
         "src.addr": 24, "dst.addr": 24, "srcIP": 24, "dstIP": 24}


class _Printer:
    """Streams rows as aligned text lines (table) or JSON lines."""

    def __init__(self, console: Console, output: str, columns: list[str], spec: GadgetSpec) -> None:
        if output not in ("table", "json"):
            raise ConfigError(f"--output {output!r}: choose table or json")
        self.console, self.output, self.columns = console, output, columns
        self.widths = [max(len(c), _WIDE.get(c) or _WIDTH[spec.columns.get(c).kind.value]) for c in columns]
        self.lock = threading.Lock()
        self.shown = 0

    @staticmethod
    def _fit(value: str, width: int) -> str:
        return value.ljust(width) if len(value) <= width else value[:width - 1] + "…"

    def _line(self, values: list[str]) -> str:
        cells = [self._fit(v, w) for v, w in zip(values[:-1], self.widths)]
        return "  ".join([*cells, values[-1]]).rstrip()

    def __call__(self, rows: list[dict]) -> None:
        with self.lock:
            for row in rows:
                if self.output == "json":
                    print(json.dumps(row, default=str), flush=True)
                    continue
                if not self.shown:
                    print(self._line([c.upper() for c in self.columns]), flush=True)
                self.shown += 1
                print(self._line([str(row.get(c, "")) for c in self.columns]), flush=True)


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
        console.print(f"[dim]no {what} from containers; add --host to include host processes[/]")


def run_trace(name, filters, output, columns, host, timeout, runtime_options, console: Console) -> None:
    from .containers import ContainerCollection, Enricher

    spec = _spec(Category.TRACE, name)
    predicate = _filter(spec, filters)
    printer = _Printer(console, output, _columns(spec, columns), spec)
    sink = printer if predicate is None else (lambda rows: printer([r for r in rows if predicate(r)]))
    signals.block()
    containers = ContainerCollection.for_host(runtime_options)
    containers.start()
    try:
        gadget = _plugin_call(f"gadget trace {name} failed to start", spec.factory, GadgetContext(host=host))
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
        console.print(f"[yellow]{gadget.stats.events_lost} events lost (ring buffer full)[/]")
    if not printer.shown and output == "table":
        _empty_hint(console, host, "events")


def _stop_trace(gadget, enricher, containers, added, removed, subscribed: bool) -> None:
    # The reverse of the start: no container event may reach a stopped gadget, and the enricher
    # may still ask the collection about held rows, so the collection stops last.
    if subscribed:
        containers.unsubscribe(added, removed)
    gadget.stop()  # also after a failed start(): it may have attached part of itself
    enricher.close()
    containers.stop()


def run_snapshot(name, filters, output, columns, host, runtime_options, console: Console) -> None:
    from .containers import ContainerCollection, Enricher

    spec = _spec(Category.SNAPSHOT, name)
    predicate = _filter(spec, filters)
    shown = _columns(spec, columns)
    containers = ContainerCollection.for_host(runtime_options)
    containers.start()
    try:
        gadget = _plugin_call(f"gadget snapshot {name} failed to start", spec.factory, GadgetContext(host=host))
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
    if output != "table":
        raise ConfigError(f"--output {output!r}: choose table or json")
    table = Table()
    for c in shown:
        table.add_column(c.upper())
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in shown))
    console.print(table)
    if not rows:
        _empty_hint(console, host, "rows")
