"""Finds gadget plugins through the `ig.gadgets` entry points, one at a time.

Unlike pluggy's own `load_setuptools_entrypoints`, a plugin that fails to import or to register
is recorded as broken and the others still load, so `ig list-gadgets` can show what went wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from . import hookspecs
from .columns import Schema
from .gadgets import Category, GadgetSpec

ENTRY_POINT_GROUP = "ig.gadgets"
DISABLE_ENV = "IG_DISABLE_PLUGINS"


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


def _disabled() -> set[str]:
    return {p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}


class _Registrar:
    """The `register` callback handed to one plugin: validates and collects its gadgets."""

    def __init__(self, catalog: GadgetCatalog, dist: str, version: str) -> None:
        self.catalog, self.dist, self.version = catalog, dist, version
        self.added: list[tuple[str, str]] = []

    def __call__(self, *, category, name, description, columns, factory, container_key="cgroup_id") -> None:
        category = Category(category)
        if not isinstance(columns, Schema):
            raise TypeError(f"gadget {name!r}: columns must be an igcore.columns.Schema")
        if not callable(factory):
            raise TypeError(f"gadget {name!r}: factory must be callable")
        key = (category.value, name)
        if key in self.catalog.gadgets or key in self.added:
            other = self.catalog.gadgets.get(key)
            where = other.distribution if other else self.dist
            raise ValueError(f"gadget {category.value} {name} is already provided by {where}")
        spec = GadgetSpec(category, name, description, columns, factory, container_key, self.dist, self.version)
        self.catalog.gadgets[key] = spec
        self.added.append(key)


def load_catalog(extra_plugins: tuple[object, ...] = ()) -> GadgetCatalog:
    """Load every gadget plugin; `extra_plugins` are modules registered directly (tests, embedding)."""
    catalog = GadgetCatalog()
    disabled = _disabled()
    candidates: list[tuple[str, str, str, object | Exception]] = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in disabled:
            continue
        dist = ep.dist.name if ep.dist else ""
        version = ep.dist.version if ep.dist else ""
        try:
            candidates.append((ep.name, dist, version, ep.load()))
        except Exception as exc:  # a broken plugin must not take the others down
            candidates.append((ep.name, dist, version, exc))
    for module in extra_plugins:
        candidates.append((getattr(module, "__name__", repr(module)), "", "", module))

    for name, dist, version, module in candidates:
        if isinstance(module, Exception):
            catalog.broken.append(BrokenPlugin(name, dist, version, _describe(module)))
            continue
        registrar = _Registrar(catalog, dist, version)
        try:
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            pm.register(module, name=name)
            pm.check_pending()
            pm.hook.ig_register_gadgets(register=registrar)
        except Exception as exc:
            for key in registrar.added:  # all or nothing per plugin
                catalog.gadgets.pop(key, None)
            catalog.broken.append(BrokenPlugin(name, dist, version, _describe(exc)))
    return catalog


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
