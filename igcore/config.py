"""The metrics config (DESIGN section 3): YAML in, validated metrics bound to installed gadgets out.

Two steps. The pydantic models check the shape (keys, types, allowed words) and know nothing of
gadgets; binding then checks everything that needs the catalog (gadget, columns, kinds) and
compiles selectors and bucket bounds. Every problem becomes ONE line naming the origin, the metric
and the key; pydantic's own wording never reaches the user.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .buckets import bucket_bounds, parse_multiplier
from .columns import Column, Schema
from .errors import ConfigError
from .gadgets import GadgetSpec
from .naming import family_name, sanitize_label_name
from .plugins import GadgetCatalog
from .selectors import Predicate, SelectorError, column_list, compile_selectors, quoted, unknown_column

INLINE_ORIGIN = "inline config"

# A counter or histogram counts events; a gauge reads a snapshot's rows.
_CATEGORY_OF_TYPE = {"counter": "trace", "histogram": "trace", "gauge": "snapshot"}


# --- the shape: pydantic models ---------------------------------------------------------------


class _Model(BaseModel):
    # strict: no "5" -> 5 coercion; forbid: typos are errors (the original ignored them);
    # frozen: hashable, so a reload can tell unchanged metrics apart by their config.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _non_blank(key: str, value: str) -> str:
    if not value.strip():
        raise ValueError(f"{key} is empty")
    return value


def _as_tuple(value: object) -> object:
    # YAML gives lists; frozen models want tuples. `key:` with nothing after it means none.
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else value


class BucketConfig(_Model):
    type: Literal["exp2", "linear"]
    min: int = Field(ge=0)
    max: int
    multiplier: Decimal = Decimal(1)
    unit: Literal["ns", "us", "ms", "s", "By"] | None = None

    @field_validator("multiplier", mode="before")
    @classmethod
    def _multiplier(cls, value: object) -> Decimal:
        try:
            return parse_multiplier(value)
        except ValueError as exc:
            raise ValueError(f"bucket {exc}") from None


class MetricConfig(_Model):
    name: str
    type: Literal["counter", "gauge", "histogram"]
    category: Literal["trace", "snapshot"]
    gadget: str
    selector: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    field: str | None = None
    bucket: BucketConfig | None = None

    @field_validator("name", "gadget")
    @classmethod
    def _filled(cls, value: str, info) -> str:
        return _non_blank(info.field_name, value)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: object) -> object:
        return _as_tuple(value)

    @field_validator("selector", mode="before")
    @classmethod
    def _selectors(cls, value: object) -> object:
        value = _as_tuple(value)
        if not isinstance(value, tuple):
            return value  # let the type check report it
        return tuple(_selector_text(i, item) for i, item in enumerate(value))


class FileConfig(_Model):
    metrics_name: str
    metrics: tuple[MetricConfig, ...]

    @field_validator("metrics_name")
    @classmethod
    def _filled(cls, value: str) -> str:
        return _non_blank("metrics_name", value)

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value


def _selector_text(index: int, item: object) -> object:
    """`{k8s.namespace: default}` -> `k8s.namespace:default`; strings pass through."""
    if isinstance(item, dict) and len(item) == 1:
        ((column, value),) = item.items()
        if not isinstance(value, (dict, list)):
            return f"{_scalar_text(column)}:{_scalar_text(value)}"
    if isinstance(item, str):
        return item
    expected = 'a "column:rule" string or a one-key mapping like {comm: cat}'
    raise ValueError(f"selector[{index}] must be {expected}, got {_describe(item)}")


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# --- the result -------------------------------------------------------------------------------


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
    bounds: tuple[float, ...] | None  # histogram upper bounds, without +Inf
    description: str  # HELP text

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def type(self) -> str:
        return self.config.type

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


# --- loading ----------------------------------------------------------------------------------


def load_config(source: str, catalog: GadgetCatalog) -> Config:
    """`@path` reads a YAML file; anything else is YAML text. Raises ConfigError, one line."""
    origin, text = _read(source)
    return load_config_text(text, origin, catalog)


def load_config_text(text: str, origin: str, catalog: GadgetCatalog) -> Config:
    """YAML text already read (by a watcher that hashed it), with the file name errors should name."""
    return bind_config(_parse_yaml(text, origin), catalog, origin)


def bind_config(data: object, catalog: GadgetCatalog, origin: str = INLINE_ORIGIN) -> Config:
    """Validate already-parsed YAML (a dict) and bind its metrics to the catalog's gadgets."""
    if data is None:
        raise ConfigError(f"{origin}: the config is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: {_not_a_mapping(data, origin)}")
    try:
        model = FileConfig.model_validate(data)
    except ValidationError as exc:
        where, problem = _explain(exc.errors()[0], data)
        raise ConfigError(f"{origin}: {where}{problem}") from None
    metrics: list[BoundMetric] = []
    for metric in model.metrics:
        try:
            bound = _bind_metric(metric, catalog)
            _check_unique(bound, metrics)
        except _Problem as exc:
            raise ConfigError(f"{origin}: metric {quoted(metric.name)}: {exc}") from None
        metrics.append(bound)
    return Config(model.metrics_name, tuple(metrics), origin)


def _read(source: str) -> tuple[str, str]:
    if not source.startswith("@"):
        return INLINE_ORIGIN, source
    path = source[1:]
    if not path:
        raise ConfigError('config: no file name after "@" (write --config @path/to/config.yaml)')
    try:
        return path, Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: cannot read the config file: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: cannot read the config file: it is a directory") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read the config file: it is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None


def _not_a_mapping(data: object, origin: str) -> str:
    message = f"the config must be a mapping with metrics_name and metrics, got {_describe(data)}"
    if origin == INLINE_ORIGIN and isinstance(data, str):
        message += " (to read a file, write @path)"
    return message


# --- YAML -------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars (as Go's yaml.v3 in the original) and no duplicate keys.

    YAML 1.1 would read `k8s.namespace: no` as false, `0755` as octal and `1e5` as a string;
    a key written twice would silently keep the last value.
    """

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue  # unhashable keys: the base class reports them
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {quoted(str(key))} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml12_resolvers() -> None:
    replaced = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
    _Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in replaced]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    number = r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
    scalars = (
        ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
        ("int", r"[-+]?[0-9]+", "-+0123456789"),
        ("float", number, "-+0123456789."),
    )
    for tag, pattern, first in scalars:
        _Loader.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", re.compile(f"^(?:{pattern})$"), list(first))
    _Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _construct_int(loader: _Loader, node) -> int:
    # Plain decimal digits are decimal: YAML 1.1's constructor would read 0755 as octal.
    text = loader.construct_scalar(node)
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    return yaml.SafeLoader.construct_yaml_int(loader, node)  # an explicit !!int 0x10 and such


_yaml12_resolvers()


def _parse_yaml(text: str, origin: str) -> object:
    if not text.strip():
        raise ConfigError(f"{origin}: the config is empty")
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"{origin}: invalid YAML {_yaml_reason(exc)}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a tagged scalar such as `!!int x`
        raise ConfigError(f"{origin}: invalid YAML: {_one_line(str(exc))}") from None


def _yaml_reason(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = "; ".join(_one_line(p) for p in (exc.problem, exc.context) if p)
    return f"{where}: {what}" if where else f": {what}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- turning pydantic's errors into sentences --------------------------------------------------

_MODELS_BY_SCOPE = {(): FileConfig, ("metric",): MetricConfig, ("metric", "bucket"): BucketConfig}
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "tuple_type": "a list",
    "list_type": "a list",
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "decimal_type": "a number",
}


def _explain(error: dict, data: dict) -> tuple[str, str]:
    """(`metric "x": ` or `metrics[2]: ` or "", the problem) for one pydantic error."""
    loc = error["loc"]
    if len(loc) >= 2 and loc[0] == "metrics" and isinstance(loc[1], int):
        return _metric_label(data, loc[1]), _problem(error, loc[2:], ("metric",))
    return "", _problem(error, loc, ())


def _metric_label(data: dict, index: int) -> str:
    items = data.get("metrics")
    item = items[index] if isinstance(items, list) and index < len(items) else None
    name = item.get("name") if isinstance(item, dict) else None
    return f"metric {quoted(name)}: " if isinstance(name, str) and name.strip() else f"metrics[{index}]: "


def _problem(error: dict, path: tuple, scope: tuple) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in ("missing", "extra_forbidden"):
        return _key_problem(kind, path, scope)
    phrase = _phrase(path)
    if kind == "literal_error":
        expected = error["ctx"]["expected"].replace("'", "")
        return f"unknown {phrase} {_describe(value)} (expected {expected})"
    if kind == "greater_than_equal":
        return f"{phrase} must not be negative, got {_describe(value)}"
    if kind in _EXPECTED:
        return _type_problem(phrase, _EXPECTED[kind], value)
    # Not reachable with these models today; still one line, and not pydantic's wording.
    return f"{phrase or 'the config'} has an invalid value {_describe(value)}"


def _type_problem(phrase: str, expected: str, value: object) -> str:
    if not phrase:  # the metric item itself
        return f"each metric must be a mapping with name, type, category and gadget, got {_describe(value)}"
    return f"{phrase} must be {expected}, got {_describe(value)}"


def _key_problem(kind: str, path: tuple, scope: tuple) -> str:
    key, parent = path[-1], path[:-1]
    inside = f" in {_phrase(parent)}" if parent else ""
    if kind == "missing":
        return f'missing required key "{key}"{inside}'
    allowed = list(_MODELS_BY_SCOPE[scope + tuple(p for p in parent if isinstance(p, str))].model_fields)
    guess = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    hint = f'did you mean "{guess[0]}"? ' if guess else ""
    level = "top-level " if not scope and not parent else ""
    return f"unknown {level}key {quoted(str(key))}{inside} ({hint}allowed keys: {', '.join(allowed)})"


def _phrase(path: tuple) -> str:
    """('bucket', 'min') -> 'bucket min'; ('labels', 0) -> 'labels[0]'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f" {part}" if text else str(part))
    return text


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return str(value)


# --- binding: what needs the catalog ----------------------------------------------------------


class _Problem(Exception):
    """A problem with one metric; the caller adds the origin and the metric's name."""


def _bind_metric(cfg: MetricConfig, catalog: GadgetCatalog) -> BoundMetric:
    spec = _gadget(cfg, catalog)
    schema = spec.columns
    _check_histogram_keys(cfg)
    bounds = _bounds(cfg)
    label_columns = tuple(_column(schema, name, "labels").name for name in cfg.labels)
    label_names = _label_names(cfg.labels, label_columns)
    field_column = _field(cfg, schema)
    try:
        predicate = compile_selectors(cfg.selector, schema)
    except SelectorError as exc:
        raise _Problem(str(exc)) from None
    return BoundMetric(
        cfg, spec, label_columns, label_names, field_column, predicate, _family(cfg), bounds, _description(cfg)
    )


def _check_category(cfg: MetricConfig) -> None:
    needed = _CATEGORY_OF_TYPE[cfg.type]
    if cfg.category != needed:
        feeds = "gauges" if cfg.category == "snapshot" else "counters and histograms"
        raise _Problem(f"a {cfg.type} needs a {needed} gadget, but category is {cfg.category} "
                       f"({cfg.category} gadgets feed {feeds})")


def _gadget(cfg: MetricConfig, catalog: GadgetCatalog) -> GadgetSpec:
    _check_category(cfg)
    spec = catalog.get(cfg.category, cfg.gadget)
    if spec is not None:
        return spec
    installed = catalog.names(cfg.category)
    choices = f"installed {cfg.category} gadgets: {', '.join(installed)}"
    if not installed:
        choices = f"no {cfg.category} gadgets are installed"
    gadget, others = quoted(cfg.gadget), catalog.categories_of(cfg.gadget)
    if others:
        raise _Problem(f"gadget {gadget} is a {' and '.join(others)} gadget, not {cfg.category} ({choices})")
    raise _Problem(f"unknown gadget {gadget} in category {cfg.category} ({choices})")


def _check_histogram_keys(cfg: MetricConfig) -> None:
    if cfg.type != "histogram":
        if cfg.bucket is not None:
            raise _Problem(f"bucket is only for histograms, but this metric is a {cfg.type}")
        return
    if cfg.field is None:
        raise _Problem("a histogram needs field (the numeric column it observes)")
    if cfg.bucket is None:
        raise _Problem("a histogram needs bucket (e.g. {type: exp2, min: 0, max: 10})")


def _bounds(cfg: MetricConfig) -> tuple[float, ...] | None:
    b = cfg.bucket
    if b is None:
        return None
    try:
        return tuple(bucket_bounds(b.type, b.min, b.max, b.multiplier))
    except ValueError as exc:
        raise _Problem(str(exc)) from None


def _column(schema: Schema, name: str, key: str) -> Column:
    column = schema.get(name)
    if column is None:
        raise _Problem(unknown_column(name, schema, f" in {key}"))
    return column


def _label_names(written: tuple[str, ...], columns: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(sanitize_label_name(c) for c in columns)
    first: dict[str, str] = {}
    for text, label in zip(written, names):
        if label in first:
            raise _Problem(f"duplicate label {label} in labels (from {quoted(first[label])} and {quoted(text)})")
        first[label] = text
    return names


def _field(cfg: MetricConfig, schema: Schema) -> str | None:
    if cfg.field is None:
        return None
    column = _column(schema, cfg.field, "field")
    if not column.kind.numeric:
        numeric = column_list(schema, (c for c in schema if c.kind.numeric)) or "none"
        raise _Problem(f"field {quoted(cfg.field)} is not numeric: column {column.name} is {column.kind.value} "
                       f"(numeric columns: {numeric})")
    return column.name


def _family(cfg: MetricConfig) -> str:
    unit = cfg.bucket.unit if cfg.bucket else None
    family = family_name(cfg.name, cfg.type, unit)
    if not family:
        raise _Problem(f"name {quoted(cfg.name)} is empty once the _total that counters add is removed")
    return family


def _check_unique(bound: BoundMetric, earlier: list[BoundMetric]) -> None:
    # Compared as exposed: "a.b" and "a_b", or counters "x" and "x_total", would collide.
    for index, other in enumerate(earlier):
        if other.family_name == bound.family_name:
            also = f"metrics[{index}] {quoted(other.name)}"
            raise _Problem(f"duplicate metric name {quoted(bound.family_name)} (also the name of {also})")


def _description(cfg: MetricConfig) -> str:
    things = "events" if cfg.category == "trace" else "rows"
    source = f"{cfg.category} {cfg.gadget} {things}"
    if cfg.field is None:
        return f"{cfg.name}: {cfg.type} of {source}"
    if cfg.type == "histogram":
        return f"{cfg.name}: histogram of {cfg.field} in {source}"
    return f"{cfg.name}: {cfg.type} of the sum of {cfg.field} over {source}"
