"""Prometheus names and label values for metrics bound to gadget columns (docs/config.md, "Names and labels").

The collector hands `family_name(...)` to prometheus_client's MetricFamily classes, which add the
series suffixes themselves (`_total` for counters, `_bucket`/`_sum`/`_count` for histograms).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Protocol


class Suffixed(Protocol):
    """What naming reads of a metric type (igcore/metrictypes.py: the table sits above this room)."""
    @property
    def family_suffix(self) -> str: ...

_METRIC_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")

# Histogram unit -> the suffix Prometheus naming conventions put on the family name.
UNIT_SUFFIXES: dict[str, str] = {
    "ns": "_nanoseconds",
    "us": "_microseconds",
    "ms": "_milliseconds",
    "s": "_seconds",
    "By": "_bytes",
}

# prometheus_client's CounterMetricFamily strips this and adds it back to the series.
COUNTER_SUFFIX = "_total"


def _leading_digit_safe(name: str) -> str:
    # Prometheus names may not start with a digit; a prefix keeps the rest readable.
    return "_" + name if name[:1].isdigit() else name


def sanitize_metric_name(name: str) -> str:
    """`name` with every character outside [a-zA-Z0-9_:] replaced by `_`, never starting with a digit."""
    return _leading_digit_safe(_METRIC_INVALID.sub("_", name))


def sanitize_label_name(column: str) -> str:
    """The label name for a column: `k8s.namespace` -> `k8s_namespace`."""
    return _leading_digit_safe(_LABEL_INVALID.sub("_", column))


def family_name(name: str, kind: Suffixed, unit: str | None = None) -> str:
    """The name to give prometheus_client's MetricFamily for a metric of this config.

    Sanitised; the type's `family_suffix` (`_total` for a counter) removed from its end, since the
    library adds it to the series and a config name ending with it must not double it; then the
    bucket unit's suffix, unless the name already ends with it. May be empty for a counter named
    `_total`: the caller rejects that.
    """
    base = sanitize_metric_name(name)
    suffix = kind.family_suffix
    if suffix and base.endswith(suffix):
        base = base[: -len(suffix)]
    if unit:
        unit_suffix = UNIT_SUFFIXES.get(unit)
        if unit_suffix is None:
            raise ValueError(f"unknown unit {unit!r} (expected one of {', '.join(UNIT_SUFFIXES)})")
        return base if base.endswith(unit_suffix) else base + unit_suffix
    return base


def label_value(v: object) -> str:
    """A column value as label text: decimal numbers, `true`/`false`, text as is, empty stays empty."""
    # Exact type checks first: this runs per event for every label.
    t = type(v)
    if t is str:
        return v if v.isascii() else utf8_text(v)  # type: ignore[attr-defined, arg-type, return-value]
    if t is int:
        return str(v)
    if t is bool:
        return "true" if v else "false"
    if t is float:
        return _float_text(v)  # type: ignore[arg-type]
    return _other_text(v)


def utf8_text(text: str) -> str:
    """Text that encodes as UTF-8: a lone surrogate (a plugin's or a runtime's JSON can hold one)
    becomes `?` instead of failing the whole scrape's encoding."""
    try:
        text.encode()
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode()


def _float_text(v: float) -> str:
    if not math.isfinite(v):
        return "NaN" if v != v else ("+Inf" if v > 0 else "-Inf")
    text = repr(v)
    # repr switches to exponent form for very small/large values; labels stay plain decimal.
    return format(Decimal(text), "f") if "e" in text else text


def _other_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):  # IntEnum and friends: the number, not the member name
        return str(int(v))
    if isinstance(v, float):
        return _float_text(float(v))
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    return str(v)
