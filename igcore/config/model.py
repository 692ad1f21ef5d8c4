"""The shape of a config: pydantic models that check keys, types and allowed words.

They know nothing of gadgets (binding checks those). strict: no "5" -> 5 coercion; forbid: typos
are errors (the original ignored them); frozen: hashable, so a reload can tell unchanged metrics
apart by their config.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..buckets import MAX_BUCKETS, parse_multiplier
from ..nativehist import SCHEMAS
from ..metrictypes import METRIC_TYPES, listed
from ..quoting import control_character
from ..selectors import RULES
from .text import describe


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _non_blank(key: str, value: str) -> str:
    if not value.strip():
        raise ValueError(f"{key} is empty")
    control = control_character(value)
    if control is not None:
        # names reach logs, terminals and --check's output: one line each, whatever they hold
        raise ValueError(f"{key} holds the control character {control} (names are one line of text)")
    return value


def _as_tuple(value: object) -> object:
    # YAML gives lists; frozen models want tuples. `key:` with nothing after it means none.
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else value


class BucketConfig(_Model):
    type: Literal["exp2", "linear", "native"]
    min: int | None = Field(default=None, ge=0)   # exp2 and linear: the range of i
    max: int | None = None
    multiplier: Decimal = Decimal(1)
    unit: Literal["ns", "us", "ms", "s", "By"] | None = None
    schema_: int | None = Field(default=None, alias="schema")   # native: the resolution
    classic_max: int | None = None   # native: at most this many classic buckets in the text formats

    @field_validator("multiplier", mode="before")
    @classmethod
    def _multiplier(cls, value: object) -> Decimal:
        try:
            return parse_multiplier(value)
        except ValueError as exc:
            raise ValueError(f"bucket {exc}") from None

    @field_validator("schema_")
    @classmethod
    def _schema(cls, value: int | None) -> int | None:
        if value is not None and value not in SCHEMAS:
            raise ValueError(f"bucket schema must be {SCHEMAS.start} to {SCHEMAS.stop - 1}, got {value}")
        return value

    @field_validator("classic_max")
    @classmethod
    def _classic_max(cls, value: int | None) -> int | None:
        if value is not None and not 2 <= value <= MAX_BUCKETS:
            raise ValueError(f"bucket classic_max must be 2 to {MAX_BUCKETS}, got {value}")
        return value

    @model_validator(mode="after")
    def _keys_of_type(self) -> BucketConfig:
        # Each type's own keys, so a `schema` on exp2 or a `max` on native is not silently ignored.
        if self.type == "native":
            extra = [k for k in ("min", "max") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"bucket {' and '.join(extra)} {_is(extra)} for exp2 and linear buckets; a native "
                                 "histogram's buckets cover every value (set its resolution with schema)")
        else:
            missing = [k for k in ("min", "max") if getattr(self, k) is None]
            if missing:
                raise ValueError(f'missing required key "{missing[0]}" in bucket '
                                 f'({self.type} buckets need min and max)')
            extra = [k for k, v in (("schema", self.schema_), ("classic_max", self.classic_max)) if v is not None]
            if extra:
                raise ValueError(f"bucket {' and '.join(extra)} {_is(extra)} for native buckets only")
        return self



def _is(keys: list[str]) -> str:
    return "is" if len(keys) == 1 else "are"


class MetricConfig(_Model):
    name: str
    type: str   # a name of the metric-type table (igcore.metrictypes)
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

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: object) -> object:
        if isinstance(value, str) and value in METRIC_TYPES:
            return value
        raise ValueError(f"unknown type {describe(value)} (expected {listed(list(METRIC_TYPES), 'or')})")

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


# Which model holds the keys at each scope of an error's location (for "allowed keys: ...").
MODELS_BY_SCOPE: dict[tuple[str, ...], type[BaseModel]] = {
    (): FileConfig, ("metric",): MetricConfig, ("metric", "bucket"): BucketConfig}


def _selector_text(index: int, item: object) -> object:
    """`{k8s.namespace: default}` -> `k8s.namespace:default`; strings pass through."""
    if isinstance(item, dict) and len(item) == 1:
        ((column, value),) = item.items()
        if not isinstance(value, (dict, list)):
            return f"{_scalar_text(column)}:{_scalar_text(value)}"
    if isinstance(item, str):
        return item
    expected = 'a "column:rule" string or a one-key mapping like {comm: cat}'
    raise ValueError(f"selector[{index}] must be {expected}, got {describe(item)} ({RULES})")


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
