"""Binding: validated metrics tied to installed gadgets, with what the per-event path needs precomputed."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from ..errors import ConfigError
from ..gadgets import GadgetSpec
from ..metrictypes import METRIC_TYPES, MetricType
from ..nativehist import NativeBucketing
from ..plugins import GadgetCatalog
from ..quoting import quoted
from ..selectors import Predicate, SelectorError, compile_selectors
from . import checks
from .checks import Problem
from .explain import explain
from .model import FileConfig, MetricConfig
from .source import INLINE_ORIGIN
from .text import describe


@dataclass(frozen=True, eq=False)
class BoundMetric:
    """A validated metric bound to its gadget, with everything the per-event path needs precomputed.

    Two BoundMetrics are equal when their MetricConfig and gadget key are: a reload keeps the
    counts of a metric whose config did not change.
    """

    config: MetricConfig
    spec: GadgetSpec
    label_columns: tuple[str, ...]  # canonical column names, config order
    label_names: tuple[str, ...]  # sanitised, same order
    field_column: str | None  # canonical
    predicate: Predicate | None  # None: every row counts
    family_name: str  # what to give prometheus_client's MetricFamily
    bounds: tuple[float, ...] | None  # classic histogram upper bounds, without +Inf
    description: str  # HELP text
    native: NativeBucketing | None = None   # a native histogram's schema and multiplier

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def type(self) -> str:
        return self.config.type

    @property
    def metric_type(self) -> MetricType:
        """The type's entry of the table (igcore.metrictypes): what computes it, and where."""
        return METRIC_TYPES[self.config.type]

    def _identity(self) -> tuple:
        return (self.config, self.spec.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BoundMetric) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())


@dataclass(frozen=True)
class Config:
    metrics_name: str
    metrics: tuple[BoundMetric, ...]
    origin: str  # the file path, or "inline config"

    @property
    def specs(self) -> tuple[GadgetSpec, ...]:
        """The gadgets this config needs, each once, in order of first use."""
        return tuple({m.spec.key: m.spec for m in self.metrics}.values())


def bind_config(data: object, catalog: GadgetCatalog, origin: str = INLINE_ORIGIN) -> Config:
    """Validate already-parsed YAML (a dict) and bind its metrics to the catalog's gadgets."""
    if data is None:
        raise ConfigError(f"{origin}: the config is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: {_not_a_mapping(data, origin)}")
    try:
        model = FileConfig.model_validate(data)
    except ValidationError as exc:
        where, problem = explain(exc.errors()[0], data)
        raise ConfigError(f"{origin}: {where}{problem}") from None
    metrics: list[BoundMetric] = []
    names = checks.UniqueNames()
    for metric in model.metrics:
        try:
            bound = bind_metric(metric, catalog)
            names.add(bound.family_name, bound.name)
        except Problem as exc:
            raise ConfigError(f"{origin}: metric {quoted(metric.name)}: {exc}").naming(metric=metric.name) from None
        metrics.append(bound)
    return Config(model.metrics_name, tuple(metrics), origin)


def bind_metric(cfg: MetricConfig, catalog: GadgetCatalog) -> BoundMetric:
    spec = checks.gadget(cfg, catalog)
    schema = spec.columns
    checks.check_observed_keys(cfg)
    bounds = checks.bounds(cfg)
    label_columns = tuple(checks.column(schema, name, "labels").name for name in cfg.labels)
    label_names = checks.label_names(cfg.labels, label_columns)
    field_column = checks.field(cfg, schema)
    try:
        predicate = compile_selectors(cfg.selector, schema)
    except SelectorError as exc:
        raise Problem(str(exc)) from None
    return BoundMetric(cfg, spec, label_columns, label_names, field_column, predicate, checks.family(cfg), bounds,
                       checks.description(cfg), checks.native(cfg))


def _not_a_mapping(data: object, origin: str) -> str:
    message = f"the config must be a mapping with metrics_name and metrics, got {describe(data)}"
    if origin == INLINE_ORIGIN and isinstance(data, str):
        message += " (to read a file, write @path)"
    return message
