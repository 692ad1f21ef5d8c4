"""Finds gadget plugins through the `ig.gadgets` entry points, one at a time.

Unlike pluggy's own `load_setuptools_entrypoints`, a plugin that fails to import or to register
is recorded as broken and the others still load, so `ig list-gadgets` can show what went wrong.

Names never change hands silently: every plugin registers into its own list first, then each
(category, name) claimed by more than one distribution is settled. The gadgets shipped with ig
(BUILTIN_DISTRIBUTIONS) keep their names and the other claimant is refused; between two
third-party distributions neither wins. A refused plugin is listed as broken with a line naming
both distributions. The outcome never depends on the order entry points are found in.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import get_args

import pluggy

from . import hookspecs
from .columns import Schema
from .gadgets import Category, ContainerKey, GadgetSpec

log = logging.getLogger("igcore.plugins")

ENTRY_POINT_GROUP = "ig.gadgets"
DISABLE_ENV = "IG_DISABLE_PLUGINS"

# The distributions this repository ships (plugins/*/pyproject.toml; a test keeps the two in step).
# A name is settled by distribution, not by entry-point name, which any package may reuse.
BUILTIN_DISTRIBUTIONS = frozenset({
    "ig-gadget-exec", "ig-gadget-dns", "ig-gadget-process", "ig-gadget-socket",
    "ig-gadget-open", "ig-gadget-signal", "ig-gadget-bind", "ig-gadget-tcp", "ig-gadget-oomkill",
})

CONTAINER_KEYS: tuple[str, ...] = get_args(ContainerKey)


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    distribution: str
    version: str
    error: str


@dataclass
class GadgetCatalog:
    """Every installed gadget, by (category, name), plus the plugins that failed."""

    gadgets: dict[tuple[str, str], GadgetSpec] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)

    def get(self, category: str, name: str) -> GadgetSpec | None:
        return self.gadgets.get((category, name))

    def names(self, category: str | None = None) -> list[str]:
        return sorted(n for (c, n) in self.gadgets if category is None or c == category)

    def categories_of(self, name: str) -> list[str]:
        return sorted(c for (c, n) in self.gadgets if n == name)


def normalized(distribution: str) -> str:
    """A distribution name as packaging compares them (PEP 503): `IG_Gadget.exec` is `ig-gadget-exec`."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def is_builtin(distribution: str) -> bool:
    return normalized(distribution) in BUILTIN_DISTRIBUTIONS


def _disabled() -> set[str]:
    """The distributions IG_DISABLE_PLUGINS names, normalized (docs/plugins.md)."""
    return {normalized(p.strip()) for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}


def _warn_entry_point_names(disabled: set[str], entry_points, distributions: set[str]) -> None:
    """A name that is no installed distribution but an entry point's (the old meaning) disables
    nothing: an entry-point name is not unique, any package may reuse it. One line says so."""
    entry_names = {normalized(ep.name) for ep in entry_points}
    for name in sorted(disabled - distributions):
        if name in entry_names:
            log.warning("%s: %r is an entry-point name, not a distribution; it disables nothing "
                        "(name the distribution, as `ig list-gadgets` shows it)", DISABLE_ENV, name)


class _Registrar:
    """The `register` callback (a `hookspecs.Register`) handed to one plugin: validates its gadgets."""

    def __init__(self, dist: str, version: str) -> None:
        self.dist, self.version = dist, version
        self.specs: dict[tuple[str, str], GadgetSpec] = {}

    def __call__(self, *, category, name, description, columns, factory, container_key="cgroup_id") -> None:
        category = Category(category)
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"gadget name must be a non-empty string, got {name!r}")
        if not isinstance(columns, Schema):
            raise TypeError(f"gadget {name!r}: columns must be an igcore.api.Schema")
        if not callable(factory):
            raise TypeError(f"gadget {name!r}: factory must be callable")
        _check_container_key(name, container_key, columns)
        key = (category.value, name)
        if key in self.specs:
            raise ValueError(f"gadget {category.value} {name} is registered twice")
        self.specs[key] = GadgetSpec(category, name, description, columns, factory, container_key,
                                     self.dist, self.version)


def _check_container_key(name: str, container_key: object, columns: Schema) -> None:
    # Checked here, not when the first row arrives: a typo would otherwise kill the reader thread.
    if container_key not in CONTAINER_KEYS:
        raise ValueError(f"gadget {name!r}: container_key {container_key!r} is not one of {', '.join(CONTAINER_KEYS)}")
    if columns.get(container_key) is None:
        raise ValueError(f"gadget {name!r}: container_key {container_key!r} is not a column of its schema")


@dataclass
class _Loaded:
    """One plugin's outcome before names are settled."""

    name: str
    dist: str
    version: str
    specs: dict[tuple[str, str], GadgetSpec] = field(default_factory=dict)
    error: str = ""


class _UsersInterrupt(KeyboardInterrupt):
    """Ctrl-C while plugins load: the user's, not a plugin's bug, so it is not caught per plugin."""


@contextmanager
def _users_interrupts():
    """While plugins load, a SIGINT raises _UsersInterrupt (where Python's default handler is in
    place, on the main thread); a KeyboardInterrupt that plugin code raises stays its own bug."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def interrupted(signum, frame):
        raise _UsersInterrupt

    signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def load_catalog(extra_plugins: tuple[object, ...] = ()) -> GadgetCatalog:
    """Load every gadget plugin; `extra_plugins` are modules registered directly (tests, embedding)."""
    with _users_interrupts():
        loaded = [_register(name, dist, version, module) for name, dist, version, module in _candidates(extra_plugins)]
    _settle_names(loaded)
    catalog = GadgetCatalog()
    for plugin in loaded:
        if plugin.error:
            catalog.broken.append(BrokenPlugin(plugin.name, plugin.dist, plugin.version, plugin.error))
        else:
            catalog.gadgets.update(plugin.specs)
    return catalog


def _candidates(extra_plugins: tuple[object, ...]) -> list[tuple[str, str, str, object]]:
    disabled = _disabled()
    entry_points = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    distributions = {normalized(ep.dist.name) for ep in entry_points if ep.dist}
    _warn_entry_point_names(disabled, entry_points, distributions)
    found: list[tuple[str, str, str, object]] = []
    for ep in entry_points:
        dist = ep.dist.name if ep.dist else ""
        version = ep.dist.version if ep.dist else ""
        if dist and normalized(dist) in disabled:
            continue
        try:
            found.append((ep.name, dist, version, ep.load()))
        except _UsersInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: a broken plugin must not take the others down
            found.append((ep.name, dist, version, exc))
    for module in extra_plugins:
        found.append((getattr(module, "__name__", repr(module)), "", "", module))
    return found


def _register(name: str, dist: str, version: str, module: object) -> _Loaded:
    if isinstance(module, BaseException):   # what its import raised
        return _Loaded(name, dist, version, error=_describe(module))
    registrar = _Registrar(dist, version)
    try:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        pm.register(module, name=name)
        pm.check_pending()
        pm.hook.ig_register_gadgets(register=registrar)
    except _UsersInterrupt:
        raise
    except BaseException as exc:  # all or nothing per plugin; SystemExit and the like are its bugs too
        return _Loaded(name, dist, version, error=_describe(exc))
    return _Loaded(name, dist, version, registrar.specs)


def _settle_names(loaded: list[_Loaded]) -> None:
    """Refuse every plugin that claims a name it may not have (see the module's docstring)."""
    claims: dict[tuple[str, str], list[_Loaded]] = {}
    for plugin in loaded:
        if not plugin.error:
            for key in plugin.specs:
                claims.setdefault(key, []).append(plugin)
    refusals: dict[int, str] = {}  # id(plugin) -> its error; the first collision found is reported
    for (category, name), claimants in sorted(claims.items()):
        if len(claimants) < 2:
            continue
        owners = [p for p in claimants if is_builtin(p.dist)]
        owner = owners[0] if len(owners) == 1 else None
        for plugin in claimants:
            if plugin is owner:
                continue
            others = " and ".join(_dist_label(p) for p in claimants if p is not plugin)
            if owner is not None:
                why = (f"gadget {category} {name} belongs to {_dist_label(owner)}, shipped with ig; "
                       f"{_dist_label(plugin)} may not register it")
            else:
                why = (f"gadget {category} {name} is registered by both {_dist_label(plugin)} and {others}; "
                       "neither is loaded")
            refusals.setdefault(id(plugin), f"NameCollision: {why}")
    for plugin in loaded:
        if id(plugin) in refusals:
            plugin.error, plugin.specs = refusals[id(plugin)], {}


def _dist_label(plugin: _Loaded) -> str:
    return plugin.dist or f"the module {plugin.name}"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
