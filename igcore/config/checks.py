"""The checks of one metric that need its gadget, and the checks across metrics.

Each raises `Problem` with the phrase for the user; the caller adds the origin and the metric's name.
"""

from __future__ import annotations

import math

from decimal import DecimalException

from ..buckets import bucket_bounds
from ..nativehist import DEFAULT_CLASSIC_MAX, DEFAULT_SCHEMA, NativeBucketing
from ..columns import Column, Schema
from ..gadgets import GadgetSpec
from ..metrictypes import METRIC_TYPES, listed, types_reading
from ..naming import family_name, sanitize_label_name
from ..plugins import GadgetCatalog
from ..quoting import quoted
from ..selectors import column_list, unknown_column
from .model import MetricConfig

# ig's own metrics (ig_info, ig_gadget_running, ig_events_*_total, ig_gadget_<counter>_total, ...)
# all start with this. The whole prefix is reserved, not today's families one by one: a gadget's
# own counters add families by name, and later releases add more.
RESERVED_PREFIX = "ig_"


class Problem(Exception):
    """A problem with one metric; the caller adds the origin and the metric's name."""


def check_category(cfg: MetricConfig) -> None:
    needed = METRIC_TYPES[cfg.type].category.value
    if cfg.category != needed:
        feeds = listed([t.plural for t in types_reading(cfg.category)])
        raise Problem(f"a {cfg.type} needs a {needed} gadget, but category is {cfg.category} "
                      f"({cfg.category} gadgets feed {feeds})")


def gadget(cfg: MetricConfig, catalog: GadgetCatalog) -> GadgetSpec:
    check_category(cfg)
    spec = catalog.get(cfg.category, cfg.gadget)
    if spec is not None:
        return spec
    installed = catalog.names(cfg.category)
    choices = f"installed {cfg.category} gadgets: {', '.join(installed)}"
    if not installed:
        choices = f"no {cfg.category} gadgets are installed"
    name, others = quoted(cfg.gadget), catalog.categories_of(cfg.gadget)
    if others:
        raise Problem(f"gadget {name} is a {' and '.join(others)} gadget, not {cfg.category} ({choices})")
    raise Problem(f"unknown gadget {name} in category {cfg.category} ({choices})")


def check_observed_keys(cfg: MetricConfig) -> None:
    kind = METRIC_TYPES[cfg.type]
    if not kind.buckets and cfg.bucket is not None:
        takers = listed([t.plural for t in METRIC_TYPES.values() if t.buckets])
        raise Problem(f"bucket is only for {takers}, but this metric is a {cfg.type}")
    if kind.observes and cfg.field is None:
        raise Problem(f"a {cfg.type} needs field (the numeric column it observes)")
    if kind.buckets and cfg.bucket is None:
        raise Problem(f"a {cfg.type} needs bucket (e.g. {{type: exp2, min: 0, max: 10}})")


def bounds(cfg: MetricConfig) -> tuple[float, ...] | None:
    """A classic histogram's upper bounds; None for another type or a native histogram."""
    b = cfg.bucket
    if b is None or b.min is None or b.max is None:
        return None
    try:
        return tuple(bucket_bounds(b.type, b.min, b.max, b.multiplier))
    except ValueError as exc:
        raise Problem(str(exc)) from None
    except DecimalException:  # 2**min beyond Decimal's exponent range: min of a few million
        raise Problem("bucket bounds exceed the range of a float; lower max or multiplier") from None


def native(cfg: MetricConfig) -> NativeBucketing | None:
    """A native histogram's bucketing; None for another type or a classic histogram."""
    b = cfg.bucket
    if b is None or b.type != "native":
        return None
    if not 0 < float(b.multiplier) < math.inf:   # each observation is field * float(multiplier)
        raise Problem(f"bucket multiplier {b.multiplier} is beyond the range of a float")
    return NativeBucketing(DEFAULT_SCHEMA if b.schema_ is None else b.schema_, b.multiplier,
                           DEFAULT_CLASSIC_MAX if b.classic_max is None else b.classic_max)


def column(schema: Schema, name: str, key: str) -> Column:
    found = schema.get(name)
    if found is None:
        raise Problem(unknown_column(name, schema, f" in {key}"))
    return found


def label_names(written: tuple[str, ...], columns: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(sanitize_label_name(c) for c in columns)
    first: dict[str, str] = {}
    for text, label in zip(written, names):
        if label in first:
            raise Problem(f"duplicate label {label} in labels (from {quoted(first[label])} and {quoted(text)})")
        first[label] = text
    return names


def field(cfg: MetricConfig, schema: Schema) -> str | None:
    if cfg.field is None:
        return None
    found = column(schema, cfg.field, "field")
    if not found.kind.numeric:
        numeric = column_list(schema, (c for c in schema if c.kind.numeric)) or "none"
        raise Problem(f"field {quoted(cfg.field)} is not numeric: column {found.name} is {found.kind.value} "
                      f"(numeric columns: {numeric})")
    return found.name


def family(cfg: MetricConfig) -> str:
    unit = cfg.bucket.unit if cfg.bucket else None
    kind = METRIC_TYPES[cfg.type]
    name = family_name(cfg.name, kind, unit)
    if not name:
        raise Problem(f"name {quoted(cfg.name)} is empty once the {kind.family_suffix} that {kind.plural} add "
                      "is removed")
    if name.startswith(RESERVED_PREFIX):
        exposed = "" if name == cfg.name else f" (exposed as {name})"
        raise Problem(f"name {quoted(cfg.name)}{exposed} is reserved: names starting with {RESERVED_PREFIX} "
                      f"are ig's own metrics (ig_info, ig_gadget_running, ...)")
    return name


class UniqueNames:
    """Family names seen so far, compared as exposed: "a.b" and "a_b", or counters "x" and "x_total"."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[int, str]] = {}  # family -> (index, name as written)

    def add(self, family_name: str, name: str) -> None:
        earlier = self._first.get(family_name)
        if earlier is not None:
            index, other = earlier
            raise Problem(f"duplicate metric name {quoted(family_name)} (also the name of metrics[{index}] "
                          f"{quoted(other)})")
        self._first[family_name] = (len(self._first), name)


def description(cfg: MetricConfig) -> str:
    things = "events" if cfg.category == "trace" else "rows"
    source = f"{cfg.category} {cfg.gadget} {things}"
    if cfg.field is None:
        return f"{cfg.name}: {cfg.type} of {source}"
    if METRIC_TYPES[cfg.type].observes:
        return f"{cfg.name}: {cfg.type} of {cfg.field} in {source}"
    return f"{cfg.name}: {cfg.type} of the sum of {cfg.field} over {source}"
