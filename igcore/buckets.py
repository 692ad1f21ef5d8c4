"""Histogram bucket upper bounds from a config's `bucket` (docs/config.md, "Histogram buckets").

Bounds are computed with Decimal from the multiplier's written form, so `linear` with multiplier
0.0001 gives 0.0003 for i = 3 (float arithmetic would give 0.00030000000000000003), and only then
turned into floats for prometheus_client.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation, localcontext

BUCKET_TYPES = ("exp2", "linear")

# A typo like `max: 100000000` would otherwise build a huge list (and a huge scrape) before failing.
MAX_BUCKETS = 10_000

# Enough digits that 2**i times any written multiplier is exact before the float conversion.
_PRECISION = 400


def parse_multiplier(value: object) -> Decimal:
    """The multiplier as a Decimal, from its string form (0.0001 stays 0.0001, not a binary float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError(f"multiplier must be a number, got {value!r}")
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"multiplier must be a number, got {value!r}") from None
    if not result.is_finite() or result <= 0:
        raise ValueError(f"multiplier must be a positive number, got {value}")
    return result


def bucket_bounds(type: str, min: int, max: int, multiplier: object = 1) -> list[float]:
    """Upper bounds for i = min .. max-1: exp2 `2**i * multiplier`, linear `i * multiplier`.

    Raises ValueError for an unknown type, `max <= min`, more than MAX_BUCKETS bounds, a
    non-positive multiplier, or bounds that are not finite, strictly increasing floats.
    """
    if type not in BUCKET_TYPES:
        raise ValueError(f"bucket type {type!r} is not exp2 or linear")
    if max <= min:
        raise ValueError(f"bucket max ({max}) must be greater than min ({min})")
    if max - min > MAX_BUCKETS:
        raise ValueError(f"bucket max - min is {max - min}, more than {MAX_BUCKETS} buckets")
    m = parse_multiplier(multiplier)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        exact = [_step(type, i) * m for i in range(min, max)]
    bounds = [float(b) for b in exact]
    _check_increasing(bounds)
    return bounds


def _step(type: str, i: int) -> Decimal:
    # Decimal(2) ** negative i stays exact too (a power of two has a finite decimal expansion).
    return Decimal(2) ** i if type == "exp2" else Decimal(i)


def _check_increasing(bounds: list[float]) -> None:
    if not all(math.isfinite(b) for b in bounds):
        raise ValueError("bucket bounds exceed the range of a float; lower max or multiplier")
    for low, high in zip(bounds, bounds[1:]):
        if not low < high:
            raise ValueError(f"bucket bounds are not strictly increasing ({low!r} then {high!r})")
