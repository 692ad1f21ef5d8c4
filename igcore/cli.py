"""The `ig` command: thin typer commands over the engine; IgError becomes one red line and an exit code."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, NamedTuple, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import logs, signals
from .cli_runtimes import with_runtime_options
from .errors import ConfigError, IgError, RuntimeFailure
from .http import HttpOptions
from .logs import LogFormat
from .privileges import require_root
from .probes import STUCK_AFTER, Probes, check_metrics_path
from .quoting import one_line
from .supervisor import Abandoned, Supervisor

if TYPE_CHECKING:   # imported where used: `ig prometheus --check` loads no engine nor server
    from .configwatch import ConfigFollower, ConfigWatcher
    from .engine import Engine
    from .http import MetricsServer

app = typer.Typer(
    help="Kernel events captured with eBPF, served as Prometheus metrics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich's option table cuts long option names at 80 columns.
    rich_markup_mode=None,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DEFAULT_CONFIG = "default.yaml"


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        sys.stdout.write(f"ig {__version__}\n")
        raise typer.Exit()


@app.callback()
def _top(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print ig's version (the one ig_info reports) and exit.")] = False,
) -> None:
    """Kernel events captured with eBPF, served as Prometheus metrics."""


def _default_config_path() -> Path:
    return Path(__file__).resolve().parent / "data" / DEFAULT_CONFIG


def _print_default_config(value: bool) -> None:
    if value:
        # the file as shipped, byte for byte: a starting point to copy (rich would read [..] as markup)
        sys.stdout.write(_default_config_path().read_text())
        raise typer.Exit()


def fail(exc: IgError) -> typer.Exit:
    """Print the error as one red line on stderr (a record in --log-format logfmt or json); the
    caller raises the returned Exit."""
    _error(str(exc), **exc.fields)
    return typer.Exit(exc.exit_code)


def _error(message: str, logger: str = "igcore", **fields) -> None:
    if logs.structured():
        logs.announce(message, logging.ERROR, logger, **fields)
    else:
        err.print(f"[bold red]Error:[/] [red]{escape(one_line(message))}[/]", soft_wrap=True)


def _say(message: str, level: int = logging.INFO, logger: str = "igcore") -> None:
    """A status line of ig (running, reloaded, stopped): on stdout in text, a record otherwise."""
    if logs.structured():
        logs.announce(message, level, logger)
    elif level >= logging.WARNING:
        err.print(f"[yellow]{escape(one_line(message))}[/]", soft_wrap=True)
    else:
        out.print(escape(one_line(message)), soft_wrap=True)
    sys.stdout.flush()


def _setup_logging(verbose: bool, log_format: LogFormat = LogFormat.text) -> None:
    logs.setup(log_format, verbose, console=err)


def _read_config_source(config: Optional[str]) -> str:
    """The text `load_config` takes: `@path`, inline YAML, or the built-in default."""
    from .configwatch import config_path

    if config is None:
        return f"@{_default_config_path()}"
    path = config_path(config)
    return config if path is None else f"@{path}"  # a directory means its config.yaml


def _with_kubeconfig(runtime_options: Callable, kubeconfig: Optional[Path]) -> Callable:
    """--kubeconfig joins the runtime options: the pod watch is a container source."""
    if kubeconfig is None:
        return runtime_options
    return lambda: replace(runtime_options(), kubeconfig=str(kubeconfig))


HostOpt = Annotated[bool, typer.Option("--host", help="Count events of host processes too (container columns empty).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")]
LogFormatOpt = Annotated[LogFormat, typer.Option(
    "--log-format", help="Log lines on stderr: text (for people), logfmt or json (one event per line, with "
    "time, level, logger, message and the gadget, metric and reason it names; docs/config.md, Logs).")]


@app.command()
@with_runtime_options()
def prometheus(
    ctx: typer.Context,
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="Metrics config: @path/to/file.yaml or inline "
                                                                         "YAML. Default: the built-in config.")] = None,
    listen: Annotated[str, typer.Option(
        "--metrics-listen-address", help="Address to serve metrics on.")] = "127.0.0.1:2223",
    path: Annotated[str, typer.Option("--metrics-path", help="HTTP path of the metrics.")] = "/metrics",
    host: HostOpt = False,
    check: Annotated[bool, typer.Option("--check", help="Validate the config and exit, without loading eBPF.")] = False,
    max_series: Annotated[int, typer.Option(
        "--max-series", min=1, help="Label sets kept per metric; at the cap, a new one evicts the series updated least "
                                    "recently (a gauge drops a snapshot's further ones).")] = 10000,
    snapshot_interval: Annotated[float, typer.Option(
        "--snapshot-min-interval", min=0.0, help="Seconds a snapshot is reused by later scrapes.")] = 1.0,
    series_grace: Annotated[float, typer.Option(
        "--series-grace", min=0.0,
        help="Seconds a series of a container that is gone stays after its last event.")] = 300.0,
    series_idle: Annotated[float, typer.Option(
        "--series-idle-timeout", min=0.0,
        help="Seconds after its last event that any series leaves (0: never).")] = 0.0,
    series_sweep: Annotated[float, typer.Option(
        "--series-sweep-period", min=0.1, help="Seconds between two looks for series that left.")] = 10.0,
    snapshot_timeout: Annotated[float, typer.Option(
        "--snapshot-timeout", min=0.0, help="Seconds a scrape waits for a snapshot gadget; past it the scrape answers "
                                            "without that gadget's gauges (0: no limit).")] = 5.0,
    strict: Annotated[bool, typer.Option("--strict", help="Exit (or refuse a reload) when any gadget fails to start or "
                                                          "stops running, instead of running the others.")] = False,
    kernel_aggregation: Annotated[bool, typer.Option(
        "--kernel-aggregation/--no-kernel-aggregation",
        help="Count metrics that the gadget's eBPF program can evaluate in BPF maps (--no-kernel-aggregation: every "
             "metric in user space; --check says where each goes).")] = True,
    exemplars: Annotated[bool, typer.Option(
        "--exemplars", help="On the OpenMetrics scrape, give each series of a counter or histogram (each bucket) "
                            "the pid, comm and container of its latest event; in the kernel, pid and container "
                            "(docs/config.md, Exemplars).")] = False,
    runtime_options=None,   # --runtimes and the runtimes' socket options (cli_runtimes.py)
    kubeconfig: Annotated[Optional[Path], typer.Option(
        "--kubeconfig", help="Watch this node's pods (NODE_NAME) through the API server of this kubeconfig, for the "
                             "pod owner and label columns, from outside a pod (in a pod: its service account; "
                             "docs/config.md, Pod owners and labels).")] = None,
    web_config: Annotated[Optional[Path], typer.Option(
        "--web-config-file",
        help="TLS and basic auth, in the Prometheus exporter-toolkit's format (docs/security.md).")] = None,
    max_connections: Annotated[int, typer.Option(
        "--web-max-connections", min=1, help="Connections kept open at most (also at most half the descriptor limit).")
    ] = HttpOptions.max_connections,
    read_timeout: Annotated[float, typer.Option(
        "--web-read-timeout", min=0.1, help="Seconds for a TLS handshake, and for a request once it started.")
    ] = HttpOptions.read_timeout,
    idle_timeout: Annotated[float, typer.Option(
        "--web-idle-timeout", min=0.1, help="Seconds a kept-alive connection may wait between requests.")
    ] = HttpOptions.idle_timeout,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the --config file (or directory: its config.yaml, as a "
                                                        "mounted ConfigMap) and reload on change; a missing or invalid "
                                                        "file keeps ig running.")] = False,
    watch_poll: Annotated[float, typer.Option(
        "--watch-poll-interval", min=0.1,
        help="With --watch: seconds between checks that do not rely on inotify.")] = 10.0,
    inotify: Annotated[bool, typer.Option(
        "--inotify/--no-inotify", help="With --watch: wake on inotify events of the config's directory (--no-inotify: "
                                       "poll only).")] = True,
    stuck_after: Annotated[float, typer.Option(
        "--health-stuck-after", min=0.1, help="Seconds one config reload (or the stop) may hold the engine before "
                                              "/healthz answers 503 (docs/guide.md, Health probes).")] = STUCK_AFTER,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = LogFormat.text,
    print_default: Annotated[bool, typer.Option("--print-default-config", is_eager=True, callback=_print_default_config,
                                                help="Print the built-in config (used without --config) and exit.")
                   ] = False,
) -> None:
    """Serve metrics from eBPF gadgets for Prometheus to scrape."""
    _setup_logging(verbose, log_format)
    web = WebOptions(web_config, HttpOptions(max_connections=max_connections, read_timeout=read_timeout,
                                             idle_timeout=idle_timeout))
    try:
        follow = WatchOptions(watch_poll, inotify) if watch else None
        _prometheus(config, listen, path, host, check, max_series, snapshot_interval,
                    _with_kubeconfig(runtime_options, kubeconfig),
                    _series_policy(series_grace, series_idle, series_sweep), web, follow,
                    snapshot_timeout=snapshot_timeout, strict=strict, kernel_aggregation=kernel_aggregation,
                    stuck_after=stuck_after, compiler=ctx.obj, exemplars=exemplars)
    except IgError as exc:
        raise fail(exc) from None
    except Abandoned as exc:
        _exit_now(exc)


def _exit_now(abandoned: Abandoned) -> NoReturn:
    """A stop signal came and a step (a compile, a plugin's start()) did not finish within the
    grace: exit without waiting for its thread, as a stop does (code 0). The kernel detaches and
    frees ig's eBPF programs and maps as it closes the process's descriptors (docs/config.md)."""
    _say(f"{abandoned}; ig exits now", logging.WARNING)
    sys.stderr.flush()
    os._exit(0)


def placement_lines(cfg, kernel_aggregation: bool) -> list[str]:
    """Where each metric of `cfg` is computed, and for user space what keeps it there."""
    from .kernel import KERNEL, USER, place

    lines = []
    for bound in cfg.metrics:
        placement = place(bound, kernel_aggregation)
        gadget = f"{bound.spec.category.value} {bound.spec.name}"
        if placement.where == KERNEL:
            native = "; a native histogram, its buckets found there" if bound.native is not None else ""
            lines.append(f"  {bound.name}: in the kernel (a BPF map of {gadget}{native})")
        elif placement.where == USER:
            lines.append(f"  {bound.name}: in user space ({gadget}): {placement.reason}")
        else:
            lines.append(f"  {bound.name}: at scrape, from a snapshot of {gadget}")
    return lines


def _series_policy(grace: float, idle_timeout: float, sweep_period: float):
    from .metrics.lifecycle import SeriesPolicy

    return SeriesPolicy(grace=grace, idle_timeout=idle_timeout, sweep_period=sweep_period)


class WebOptions(NamedTuple):
    config_file: Optional[Path]
    http: HttpOptions


@dataclass(frozen=True)
class WatchOptions:
    poll_interval: float
    inotify: bool


def _prometheus(config, listen, path, host, check, max_series, snapshot_interval, runtime_options, series_policy,
                web: WebOptions = WebOptions(None, HttpOptions()), follow: Optional[WatchOptions] = None,
                snapshot_timeout: float = 5.0, strict: bool = False, kernel_aggregation: bool = True,
                stuck_after: float = STUCK_AFTER, compiler=None, exemplars: bool = False) -> None:
    """`runtime_options` is a callable: --check must not need the container code. `compiler`: the
    one igcore.main built, which has blocked the stop and reload signals (None: the engine's own)."""
    if check:
        _check(config, listen, path, web, follow is not None, kernel_aggregation)
        return
    require_root()   # first: before the container runtimes and the gadgets each fail their own way
    # The main thread takes the stop and reload signals, which igcore.main blocked, also while the
    # steps run (igcore.supervisor).
    supervisor = Supervisor()

    def make_engine():
        from .engine import Engine, EngineOptions

        return Engine(EngineOptions(host=host, max_series=max_series, snapshot_min_interval=snapshot_interval,
                                    series=series_policy, snapshot_timeout=snapshot_timeout or None, strict=strict,
                                    runtimes=runtime_options(), kernel_aggregation=kernel_aggregation,
                                    exemplars=exemplars),
                      compiler)

    serving: Optional[Serving] = None
    abandoned = False
    try:
        serving = supervisor.run(
            lambda: _start_serving(config, listen, path, web, follow, make_engine, stuck_after), "the start-up")
        if supervisor.stop_signal is None:
            _say("Running. Press Ctrl + C to finish")
            _say(f"Publishing metrics... ({serving.server.url})")
            _serve(supervisor, serving, strict)
    except Abandoned:
        abandoned = True
        raise
    finally:
        if serving is not None:
            serving.close(engine=not abandoned)   # an abandoned step holds the engine's lock
    _say("Stopped.")


def _load(config, web: WebOptions, watch: bool, checking: bool = False):
    """The web config, the follower of the config and its first version, and the fingerprint
    --watch compares later ones with (`checking`: --check, which follows nothing)."""
    from .configwatch import ConfigFollower, ConfigStatus, config_path, fingerprint
    from .plugins import load_catalog
    from .webconfig import load_web_config

    web_config = load_web_config(web.config_file) if web.config_file is not None else None
    catalog = load_catalog()
    for broken in catalog.broken:
        logging.getLogger("igcore").warning("plugin %s failed to load: %s", broken.name, broken.error)
    source = _read_config_source(config)
    if watch and config_path(source) is None:
        raise ConfigError("--watch needs --config @FILE or @DIRECTORY (a file to follow, not inline YAML)")
    follow = watch and not checking
    follower = ConfigFollower(source, catalog, ConfigStatus(), follow=follow)
    # before reading: changes from now on are found
    seen = fingerprint(follower.path) if follow and follower.path else None
    return web_config, follower, seen, follower.first()


def _check(config, listen, path, web: WebOptions, watch: bool, kernel_aggregation: bool) -> None:
    from .http import parse_listen_address

    parse_listen_address(listen)
    check_metrics_path(path)
    web_config, _, _, cfg = _load(config, web, watch, checking=True)
    out.print(f"{cfg.origin}: OK, {len(cfg.metrics)} metric(s): {', '.join(b.config.name for b in cfg.metrics)}",
              soft_wrap=True)
    for line in placement_lines(cfg, kernel_aggregation):
        out.print(line, soft_wrap=True, highlight=False)
    if web_config is not None:
        out.print(f"{web_config.path}: OK, TLS {'on' if web_config.tls else 'off'}, "
                  f"{len(web_config.users)} basic auth user(s)", soft_wrap=True)


@dataclass
class Serving:
    """What `ig prometheus` runs once started."""

    engine: Engine
    server: MetricsServer
    follower: ConfigFollower
    probes: Probes
    watcher: ConfigWatcher | None = None

    def close(self, engine: bool = True) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.server.close()
        if engine:
            self.engine.stop()


def _start_serving(config, listen, path, web: WebOptions, follow: Optional[WatchOptions], make_engine,
                   stuck_after: float) -> Serving:
    """Load the plugins and the config, start the gadgets and serve: the start-up step."""
    from prometheus_client import CollectorRegistry

    from .collector import EngineCollector
    from .configwatch import ConfigWatcher
    from .http import HttpCollector, MetricsServer, parse_listen_address
    from .webauth import WebConfigWatcher

    parse_listen_address(listen)
    check_metrics_path(path)
    web_config, follower, seen, cfg = _load(config, web, watch=follow is not None)
    engine = make_engine()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine))
    # Bound before the eBPF programs compile: a port in use fails at once. Serving from before the
    # start too, so the start-up probe hears "starting" instead of waiting in the backlog.
    probes = Probes(engine.status, lambda: follower.status.successful, stuck_after)
    server = MetricsServer(registry, listen, path, WebConfigWatcher(web_config) if web_config else None, web.http,
                           probes=probes)
    registry.register(HttpCollector(server))
    registry.register(follower.status)
    try:
        server.start()
        engine.start(cfg)
    except BaseException:
        server.close()
        engine.stop()
        raise
    serving = Serving(engine, server, follower, probes)
    if follow:
        # a change found is sent as SIGHUP to ourselves: one reload path, run by the main thread
        serving.watcher = ConfigWatcher(follower.path, seen, lambda: os.kill(os.getpid(), signals.RELOAD),
                                        follow.poll_interval, follow.inotify)
        serving.watcher.start()
    return serving


def _serve(supervisor, serving: Serving, strict: bool) -> None:
    """Until a stop signal: reload on SIGHUP (a reload is a step too), and with --strict look at
    the gadgets every second."""
    while supervisor.stop_signal is None:
        if supervisor.reload_asked:   # SIGHUPs during a step (or the start-up) ask for one more
            supervisor.reload_asked = False
            with serving.probes.reloading():
                supervisor.run(lambda: _reload(serving.engine, serving.follower), "a reload")
            continue
        received = signals.wait(1.0 if strict else None)
        supervisor.take(received)
        if received is None and strict and serving.engine.failures():   # a gadget's thread died: --strict ends ig
            run = serving.engine.failures()[0]
            raise RuntimeFailure(f"gadget {run.label} stopped running ({run.failure_message}) and --strict is set")


def _reload(engine, follower) -> None:
    """SIGHUP (or a change the watcher found): re-read the config and swap it in; on error keep the old one."""
    try:
        message = follower.reload(engine)
        engine.reloads["success"] += 1
        _say(message, logger="igcore.config")
    except IgError as exc:
        engine.reloads["failure"] += 1
        _error(f"reload failed, the previous config keeps running: {exc}", "igcore.config",
               **{**exc.fields, "reason": "reload_failed"})


@app.command("list-gadgets")
def list_gadgets(
    category: Annotated[Optional[str], typer.Argument(help="trace or snapshot")] = None,
    gadget: Annotated[Optional[str], typer.Argument(help="A gadget name, to show its columns.")] = None,
) -> None:
    """List installed gadgets, or the columns of one."""
    from rich.text import Text

    from .plugins import load_catalog

    catalog = load_catalog()
    if category is not None and gadget is None:
        raise fail(ConfigError(f"name a gadget too: ig list-gadgets {category} GADGET (installed: "
                               f"{', '.join(catalog.names(category)) or 'none'})"))
    if category is not None and gadget is not None:   # (a gadget comes after its category)
        spec = catalog.get(category, gadget)
        if spec is None:
            raise fail(ConfigError(f"no {category} gadget named {gadget!r} is installed (installed: "
                                   f"{', '.join(catalog.names(category)) or 'none'})"))
        _print_columns(f"{category} {gadget} — {spec.description}", spec)
        return
    table = Table(title="Installed gadgets")
    for col in ("category", "gadget", "distribution", "version"):   # names are pasted: never wrapped
        table.add_column(col, no_wrap=True)
    table.add_column("description")
    for (cat, name), spec in sorted(catalog.gadgets.items()):
        table.add_row(*map(Text, (cat, name, spec.distribution, spec.version, spec.description)))
    for broken in catalog.broken:
        table.add_row(Text("broken", style="red"), *map(Text, (broken.name, broken.distribution, broken.version)),
                      Text(broken.error, style="red"))
    out.print(table)


# Below this many columns beside the longest column name, `list-gadgets CATEGORY GADGET` lists the
# columns one per line: a table would have to cut the names users paste into `labels`.
_ROOM_BESIDE_NAMES = 40


def _print_columns(title: str, spec) -> None:
    import textwrap

    from rich.text import Text

    from .columns import POD_LABEL_PATTERN, by_container

    def kernel(column) -> str:   # kernel: metrics reading it may be computed in the gadget's program
        return "yes" if column.kernel is not None else "by key" if by_container(column.name) else ""

    columns = [*spec.columns, POD_LABEL_PATTERN] if "k8s.podLabels" in spec.columns else list(spec.columns)
    longest = max(len(c.name) for c in columns)
    if out.width < longest + _ROOM_BESIDE_NAMES:
        out.print(Text(title))
        for column in columns:
            out.print(Text(column.name), soft_wrap=True)
            details = [column.kind.value, *(f"alias {a}" for a in column.aliases)]
            details += [f"kernel: {kernel(column)}"] if kernel(column) else []
            out.print(Text(textwrap.fill(f"{', '.join(details)}: {column.description}", out.width,
                                         initial_indent="    ", subsequent_indent="    ")), soft_wrap=True)
        return
    table = Table(title=Text(title))
    table.add_column("column", no_wrap=True, min_width=longest)
    for col in ("kind", "aliases", "kernel", "description"):
        table.add_column(col, no_wrap=col in ("kind", "kernel"))
    for column in columns:   # Text: a plugin's strings are shown as they are, never read as markup
        table.add_row(*map(Text, (column.name, column.kind.value, ", ".join(column.aliases), kernel(column),
                                  column.description)))
    out.print(table)


Filters = Annotated[Optional[list[str]], typer.Option(
    "--filter", "-F", help="Selector (same grammar as the config), repeatable.")]
Output = Annotated[str, typer.Option("--output", "-o", help="table (one line a row, cut to the terminal's width), wide "
                                                            "(nothing cut) or json (one object a row, every column).")]
Columns = Annotated[Optional[str], typer.Option("--columns", help="Comma-separated columns to show, in this order, "
                                                                  "instead of the default ones (table and wide; names "
                                                                  "as ig list-gadgets CATEGORY GADGET shows them).")]


@app.command()
@with_runtime_options()
def trace(
    ctx: typer.Context,
    gadget: Annotated[str, typer.Argument(help="A trace gadget, e.g. exec or dns.")],
    filters: Filters = None,
    output: Output = "table",
    columns: Columns = None,
    host: HostOpt = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Stop after this many seconds (0: until Ctrl + C).")] = 0.0,
    runtime_options=None,   # --runtimes and the runtimes' socket options (cli_runtimes.py)
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Show the rows of a trace gadget live, to see its columns and values."""
    from .live import run_trace

    _live(verbose, log_format, run_trace, gadget, filters or [], output, columns, host, timeout,
          runtime_options=runtime_options, needs_root=True, compiler=ctx.obj)


@app.command()
@with_runtime_options()
def snapshot(
    ctx: typer.Context,
    gadget: Annotated[str, typer.Argument(help="A snapshot gadget, e.g. process or socket.")],
    filters: Filters = None,
    output: Output = "table",
    columns: Columns = None,
    host: HostOpt = False,
    runtime_options=None,   # --runtimes and the runtimes' socket options (cli_runtimes.py)
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Show one snapshot of a snapshot gadget."""
    from .live import run_snapshot

    _live(verbose, log_format, run_snapshot, gadget, filters or [], output, columns, host,
          runtime_options=runtime_options, compiler=ctx.obj)


def _live(verbose: bool, log_format: LogFormat, run, *args, runtime_options, needs_root: bool = False,
          compiler=None) -> None:
    """Shared by `ig trace` and `ig snapshot`: logging, runtime options, errors as one line.
    `compiler`: the one igcore.main built (None: one of its own, built here)."""
    _setup_logging(verbose, log_format)
    try:
        if needs_root:   # a trace gadget loads an eBPF program: checked before the container runtimes
            require_root()
        if compiler is None:
            from .bpf.compiler import Compiler

            compiler = Compiler()
        run(*args, runtime_options(), out, compiler)
    except IgError as exc:
        raise fail(exc) from None
    except Abandoned as exc:
        _exit_now(exc)


def main(compiler=None) -> None:
    """`compiler`: ig's BPF compiler (igcore.main), handed to the commands as their context's obj."""
    app(obj=compiler)


if __name__ == "__main__":
    main()
