"""Where each metric is computed: in the kernel (a BPF map the gadget's program updates where it
emits) or in user space (rows through the ring buffer), decided per metric from its config alone.

A trace metric goes to the kernel when everything it reads is known to the program at IG_EMIT
(columns with a `KernelField`) and every operator is one the generated C evaluates exactly as the
user-space path does: integer comparisons, equality of fixed-size strings and of named integers
(qtype), `+1` or integer `field` sums, histograms of an integer field (classic, or native ones,
whose bucket the program finds by igcore.kernel.native's thresholds). Container columns
(k8s.*, runtime.*) are applied when the map is read, by the gadget's container key, which the map
key keeps. Anything else keeps the user-space path, and `reason` says which selector, label or
field kept it there (`ig prometheus --check` prints it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..columns import Column, Kind, by_container
from ..quoting import quoted
from ..selectors import Selector, compile_selector

KERNEL, USER, SNAPSHOT = "kernel", "user", "snapshot"

INT_TYPES = {"u8": False, "u16": False, "u32": False, "u64": False, "s8": True, "s16": True, "s32": True, "s64": True}
# A histogram's bucket index is found by comparisons generated into the program: keep it small.
MAX_KERNEL_BUCKETS = 128
FORCED_REASON = "--no-kernel-aggregation is set"

@dataclass(frozen=True)
class Placement:
    """Where a metric is computed; for the kernel, what the generated code evaluates."""

    where: str                              # KERNEL, USER or SNAPSHOT
    reason: str = ""                        # why not in the kernel (USER)
    kernel_selectors: tuple[Selector, ...] = ()   # evaluated in C
    container_selectors: tuple[str, ...] = ()     # applied to container columns when the map is read
    key_columns: tuple[Column, ...] = ()    # kernel label columns, config order, kept in the map key

    @property
    def in_kernel(self) -> bool:
        return self.where == KERNEL


def place(bound, allow_kernel: bool = True) -> Placement:
    """The placement of a bound metric (igcore.config.BoundMetric)."""
    if bound.spec.category.value == "snapshot":
        return Placement(SNAPSHOT)
    if not allow_kernel:
        return Placement(USER, FORCED_REASON)
    if bound.metric_type.kernel is None:   # the type's entry names no aggregator over BPF maps
        return Placement(USER, f"a {bound.metric_type.name} is computed in user space only")
    try:
        return _kernel_placement(bound)
    except _StaysInUserSpace as why:
        return Placement(USER, str(why))


class _StaysInUserSpace(Exception):
    pass


def _kernel_placement(bound) -> Placement:
    spec, schema = bound.spec, bound.spec.columns
    if not any(column.kernel is not None for column in schema):
        raise _StaysInUserSpace(f"gadget {spec.category.value} {spec.name} declares no kernel columns")
    key = schema.get(spec.container_key)
    if key is None or key.kernel is None or not _is_int(key):
        raise _StaysInUserSpace(f"gadget {spec.category.value} {spec.name} does not declare its container key "
                                f"({spec.container_key}) as a kernel column")
    kernel_selectors, container_selectors = [], []
    for text in bound.config.selector:
        selector = compile_selector(text, schema)
        if by_container(selector.column):
            container_selectors.append(text)
        else:
            _check_selector(selector, schema.get(selector.column))
            kernel_selectors.append(selector)
    key_columns = []
    for name in bound.label_columns:
        if by_container(name):
            continue
        column = schema.get(name)
        if column.kernel is None:
            raise _StaysInUserSpace(f"label {name}: {_not_in_kernel(column)}")
        _check_ctype(column, f"label {name}")
        key_columns.append(column)
    if bound.field_column is not None:
        column = schema.get(bound.field_column)
        if column.kernel is None:
            raise _StaysInUserSpace(f"field {column.name}: {_not_in_kernel(column)}")
        if not _is_int(column) or column.kernel.values:
            raise _StaysInUserSpace(f"field {column.name}: only integer fields are summed in the kernel")
    if bound.bounds is not None and len(bound.bounds) > MAX_KERNEL_BUCKETS:
        raise _StaysInUserSpace(f"bucket: more than {MAX_KERNEL_BUCKETS} buckets")
    return Placement(KERNEL, "", tuple(kernel_selectors), tuple(container_selectors), tuple(key_columns))


def _not_in_kernel(column: Column) -> str:
    return f"column {column.name} is not known in the gadget's eBPF program"


def _is_int(column: Column) -> bool:
    return column.kernel is not None and column.kernel.ctype in INT_TYPES


def _check_ctype(column: Column, where: str) -> None:
    assert column.kernel is not None   # callers keep the others in user space first
    ctype = column.kernel.ctype
    if ctype in INT_TYPES:
        if column.kind in (Kind.INT, Kind.UINT) or (column.kind is Kind.STR and column.kernel.values):
            return
    elif char_array_size(ctype) and column.kind is Kind.STR:
        return
    raise _StaysInUserSpace(f"{where}: column {column.name} ({column.kind.value}) has kernel type {ctype}, "
                            "which ig cannot read")


def char_array_size(ctype: str) -> int:
    """N of `char[N]`, else 0."""
    if ctype.startswith("char[") and ctype.endswith("]") and ctype[5:-1].isdigit():
        return int(ctype[5:-1])
    return 0


def _check_selector(selector: Selector, column: Column) -> None:
    where = f"selector {quoted(selector.text)}"
    if column.kernel is None:
        raise _StaysInUserSpace(f"{where}: {_not_in_kernel(column)}")
    _check_ctype(column, where)
    if selector.op == "~":
        raise _StaysInUserSpace(f"{where}: regular expressions are evaluated in user space")
    if column.kind is Kind.STR:
        if selector.op != "=":
            raise _StaysInUserSpace(f"{where}: strings are ordered in user space")
        if "\ufffd" in str(selector.value):
            # the row shows U+FFFD for bytes that are not UTF-8: the kernel cannot tell which
            raise _StaysInUserSpace(f"{where}: the value holds U+FFFD, which rows use for bytes that are not UTF-8")
    elif not isinstance(selector.value, int):
        raise _StaysInUserSpace(f"{where}: {selector.value!r} is not an integer")
