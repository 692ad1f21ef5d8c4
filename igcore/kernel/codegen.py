"""The C of a gadget's in-kernel metrics, generated from their placements, and how to read it back.

The program's IG_EMIT runs `IG_KERNEL_METRICS_UPDATE()`: it copies the columns the metrics read
(the gadget's KernelField expressions, valid where it emits) into one `struct ig_krow`, and calls
`ig_kernel_metrics`, in which each metric tests its selectors and updates its entry in one of the
hash maps shared by the program's metrics (`ig_counts`, `ig_hists`, and `ig_native` when a native
histogram is computed here):

    key:   the metric's index, the gadget's container key, then the metric's kernel label columns
           (integers as 8 bytes, strings as their char[N] padded to 8 bytes), zeros to the key size;
           for ig_native, then the bucket (igcore.kernel.native.bucket_word)
    value: counter u64 (1 per event, or the field's sum), with exemplars then the last event's
           pid_tgid and bpf_ktime_get_ns (EXEMPLAR); histogram u64 per bucket (+Inf last),
           zeros to the widest histogram's, then the sum of the field, with exemplars then the
           last event's field, its tgid << 32 | bucket, and its time; native histogram the
           bucket's count, then the sum of the field over the bucket's events

A native histogram's bucket is found from the field's magnitude by its bit position and a binary
search of the thresholds inside that power of two (igcore.kernel.native), which user space writes
into the array `ig_nthr` (64 rows per native histogram) before the program's window opens
(KernelProgram); a row found unwritten all the same counts the event as dropped.

The C grows by one line per metric and one per distinct selector test, so that clang and the
verifier take time in proportion to the config (bench/startup; docs/config.md, "Start-up and
memory"). Per event, in the row: each distinct test runs once (`p`, 0 or 1); each key shape (the
map, what a metric adds and the key columns) is filled once (`keys`); each metric notes, without a
branch, whether its tests hold (`on`: 0, or its shape + 1) and what it adds (`amount`, `bucket`);
then one loop over the metrics, the only map-update path of the program, updates those noted.

With exemplars (`--exemplars`) on a gadget whose program runs in the context of the process
behind the event (its `pid` is a kernel column), a counter's or classic histogram's update also
stores the event's process and time after its atomic adds: two helper calls per metric updated,
no map operation; plain stores: of two events racing on two CPUs one is kept, either a true latest
event (a histogram's process and bucket share one word, so they are always one event's). One
slot per map entry, not per bucket: a pull gives the bucket of the series' latest event its
exemplar (docs/config.md, Exemplars). Without the option the C is exactly what it is without it.

A map that is full counts the event in `ig_kdrop[metric]`. Whether the event is counted at all is
the program's window (ig_emit.h), shared with the ring buffer: a reload that recompiles the program
hands over between two programs with it (see KernelProgram).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Any, Callable

from ..bpf.gadget import c_string   # how rows read a char[]: labels from the map read the same
from ..columns import Column, KernelField, Kind
from .ctext import bucket_index, int_compare, string_equals
from .native import NEGATIVE, POSITIVE, ROWS, Row, Thresholds, thresholds
from .plan import INT_TYPES, Placement, char_array_size


@dataclass(frozen=True)
class Layout:
    """How the map of one metric reads in Python."""

    index: int
    map_name: str                             # COUNTERS or HISTOGRAMS
    key: struct.Struct                        # metric index, container key, key columns (ints, then strings)[, bucket]
    order: tuple[int, ...]                    # per kernel label column, config order: its item in `key` - 2
    decoders: tuple[Callable[[Any], object], ...]      # per kernel label column, config order: item -> row value
    value: struct.Struct
    histogram: bool
    native: bool = False                      # a native histogram: one entry per bucket (NATIVE)
    exemplar: bool = False                    # the value ends with the last event's (field,) process and time


class _Cells:
    """The columns copied into `struct ig_krow`, each once, with C declarations and decoders."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}   # column name -> cell
        self.needs: set[str] = set()      # the macros of the columns' KernelField.needs
        self.decls: list[str] = []
        self.fills: list[str] = []

    def cell(self, column: Column) -> str:
        cell = self.names.get(column.name)
        if cell is None:
            cell = self.names[column.name] = f"c{len(self.names)}"
            field = _kernel(column)
            if field.needs:
                self.needs.add(field.needs)
            size = char_array_size(field.ctype)
            if size:
                self.decls.append(f"u64 {cell}[{-(-size // 8)}];")   # compared a word at a time (ctext)
                self.fills.append(f"__builtin_memcpy(ig_row__->{cell}, ({field.expr}), {size});")
            else:
                kind = "s64" if INT_TYPES[field.ctype] else "u64"
                self.decls.append(f"{kind} {cell};")
                self.fills.append(f"ig_row__->{cell} = ({kind})({field.expr});")
        return f"r->{cell}"


def _kernel(column: Column) -> KernelField:
    """The kernel field of a column the plan placed in the kernel (plan.place takes no other)."""
    assert column.kernel is not None
    return column.kernel


def _decoder(column: Column) -> Callable[[Any], object]:
    field = _kernel(column)
    if char_array_size(field.ctype):
        return c_string
    if column.kind is Kind.STR:   # a named integer: its name, else its decimal text, as rows show it
        names = {value: text for text, value in field.values}
        return lambda value: names.get(value, str(value))
    return int


def _signed(column: Column) -> bool:
    return INT_TYPES.get(_kernel(column).ctype, False)


def _selector_test(selector, column: Column, cell: str) -> str:
    """The selector's test, negation aside (the metric applies it: the test is shared)."""
    field = _kernel(column)
    size = char_array_size(field.ctype)
    if size:
        return string_equals(cell, size, selector.value)
    if column.kind is Kind.STR:
        return _named_integer_equals(cell, column, selector.value)
    return int_compare(cell, _signed(column), selector.op, selector.value)


def _named_integer_equals(cell: str, column: Column, text: str) -> str:
    values = dict(_kernel(column).values)
    if text in values:
        return int_compare(cell, _signed(column), "=", values[text])
    try:
        number = int(text)
    except ValueError:
        return "0"
    if str(number) != text or number in values.values():
        return "0"   # a row shows a listed integer by its name, any other in canonical decimal
    return int_compare(cell, _signed(column), "=", number)


@dataclass(frozen=True)
class Generated:
    code: str
    layouts: tuple[Layout, ...]
    key_size: int
    counter_value_size: int
    histogram_value_size: int
    native_rows: tuple[tuple[int, Row], ...] = ()   # (row of ig_nthr, its thresholds), for NativeTable
    native_width: int = 1                           # thresholds per row of ig_nthr


COUNTERS, HISTOGRAMS, NATIVE, NATIVE_TABLE = "ig_counts", "ig_hists", "ig_native", "ig_nthr"
NATIVE_VALUE_SIZE = 16   # the bucket's count, the field's sum
# What ends a value with exemplars: the last event's process (a histogram's: tgid << 32 | bucket)
# and bpf_ktime_get_ns; a histogram's has the event's field before them.
EXEMPLAR = struct.Struct("<QQ")
# Entries of ig_native per entry of a series: a native histogram's series holds one per bucket hit,
# which a field spread over a few powers of two keeps near this (docs/config.md, "Native histograms in
# the kernel").
NATIVE_ENTRIES_PER_SERIES = 8


def map_sizes(generated: Generated) -> dict[str, tuple[int, int]]:
    """Per map of the program: (key size, value size)."""
    sizes = {COUNTERS: (generated.key_size, generated.counter_value_size),
             HISTOGRAMS: (generated.key_size, generated.histogram_value_size)}
    if generated.native_rows:
        sizes[NATIVE] = (generated.key_size + 8, NATIVE_VALUE_SIZE)
    return sizes


@dataclass(frozen=True)
class _Fields:
    """A metric's key columns in the key's words: integers one word each, then strings."""

    ints: tuple[Column, ...]
    strings: tuple[Column, ...]

    @property
    def words(self) -> int:
        return len(self.ints) + sum(-(-char_array_size(_kernel(c).ctype) // 8) for c in self.strings)


def generate(spec, metrics: list[tuple[Any, Placement]], per_metric: int, exemplars: bool = False) -> Generated:
    """The C for `metrics` ((BoundMetric, kernel Placement) pairs) of gadget `spec`.

    All metrics share two hash maps, counters and histograms (a program may use at most 64 maps),
    keyed by the metric's index, the container key and the metric's key columns; each map holds
    `per_metric` entries for each of its metrics. `exemplars`: counters and classic histograms
    keep their last event's process and time where the program runs in its context
    (`in_process_context`)."""
    schema = spec.columns
    exemplars = exemplars and in_process_context(schema)
    cells = _Cells()
    key_cell = cells.cell(schema.get(spec.container_key))
    fields = [_fields(placement) for _, placement in metrics]
    words = max([f.words for f in fields] + [1])
    bucketed = [b for b, _ in metrics if _kind(b) == HISTOGRAM]
    natives = [b for b, _ in metrics if _kind(b) == NATIVE_HISTOGRAM]
    buckets = max([len(b.bounds) + 1 for b in bucketed] + [1])
    key_size, hist_size = 8 * (2 + words), 8 * (buckets + 1) + (8 + EXEMPLAR.size if exemplars else 0)
    histograms = len(bucketed)
    sizes = (max(1, len(metrics) - histograms - len(natives)) * per_metric, max(1, histograms) * per_metric)
    table = _NativeTable(natives, schema)
    shapes = _Shapes(cells, key_cell, key_size, [(_kind(b), f) for (b, _), f in zip(metrics, fields)])
    predicates = _Predicates()
    notes, layouts = [], []
    for index, ((bound, placement), f) in enumerate(zip(metrics, fields)):
        text, layout = _metric(index, bound, placement, f, cells, schema, shapes, predicates, buckets, table)
        if exemplars and layout.map_name != NATIVE:
            seen = layout.value.format[-1] if layout.histogram else ""   # the field, as the sum
            layout = replace(layout, value=struct.Struct(layout.value.format + seen + EXEMPLAR.format[1:]),
                             exemplar=True)
        notes.append(text)
        layouts.append(layout)
    head = [
        "/* Generated by igcore.kernel for the metrics computed in this program. */",
        # what the program does only for a column a metric reads (KernelField.needs: identifiers)
        *(f"#define {macro} 1" for macro in sorted(cells.needs)),
        f"struct ig_key {{ u64 metric; u64 ck; u64 w[{words}]; }};",
        f"struct ig_hist {{ u64 b[{buckets}]; u64 sum;{' u64 seen; u64 tgid_bucket; u64 ns;' if exemplars else ''} }};",
        *(["struct ig_cval { u64 n; u64 pid_tgid; u64 ns; };"] if exemplars else []),
        *table.structs(),
        # The row and the work of one event (the tests' results, the keys, per metric `on`, 0 or its
        # shape + 1, and what it adds) live in a map, not on the stack (512 bytes): the verifier
        # then learns nothing of the cells from one metric's tests that would make the next
        # metric's paths differ.
        f"struct ig_krow {{ {' '.join(cells.decls)} volatile u8 p[{max(1, len(predicates.tests))}]; "
        f"struct ig_key keys[{shapes.count}]; volatile u16 on[{len(metrics)}]; u16 bucket[{len(metrics)}]; "
        f"u64 amount[{len(metrics)}]; {table.row_fields(len(metrics))}}};",
        "BPF_PERCPU_ARRAY(ig_rows, struct ig_krow, 1);",
        "static __always_inline struct ig_krow *ig_row_slot(void) {",
        "    u32 zero = 0;",
        "    return ig_rows.lookup(&zero);",
        "}",
        # Entries are allocated as keys appear: a map's size is a bound, not memory taken at load. A
        # program that emits with interrupts off defines IG_KERNEL_MAP_FLAGS 0 (preallocated): there
        # the kernel can hand out only the few entries its per-CPU cache holds (docs/plugins.md).
        "#ifndef IG_KERNEL_MAP_FLAGS",
        "#define IG_KERNEL_MAP_FLAGS BPF_F_NO_PREALLOC",
        "#endif",
        f"BPF_F_TABLE(\"hash\", struct ig_key, {'struct ig_cval' if exemplars else 'u64'}, {COUNTERS}, {sizes[0]}, "
        "IG_KERNEL_MAP_FLAGS);",
        f"BPF_F_TABLE(\"hash\", struct ig_key, struct ig_hist, {HISTOGRAMS}, {sizes[1]}, IG_KERNEL_MAP_FLAGS);",
        *table.declarations(len(natives) * per_metric * NATIVE_ENTRIES_PER_SERIES),
        # map updates, per CPU, each counted after it is made: the reader skips a read of maps
        # that nothing updated since (KernelProgram.read)
        "BPF_PERCPU_ARRAY(ig_updates, u64, 1);",
        "static __always_inline void ig_updated(void) {",
        "    u32 zero = 0;",
        "    u64 *n = ig_updates.lookup(&zero);",
        "    if (n) *n += 1;",
        "}",
        f"BPF_PERCPU_ARRAY(ig_kdrop, u64, {max(1, len(metrics))});",
        "BPF_ARRAY(ig_zero, struct ig_hist, 1);",
        "static __always_inline void ig_kernel_drop(u32 metric) {",
        "    u64 *n = ig_kdrop.lookup(&metric);",
        "    if (n) *n += 1;",
        "}",
        *_apply(shapes, len(metrics), buckets, exemplars),
    ]
    dispatch = [
        "static __always_inline void ig_kernel_metrics(struct ig_krow *r) {",
        *(f"    {line}" for line in shapes.builds),
        # tests read the row through `t`, volatile like `p`: no test is hoisted above the previous
        # result's store, so no result waits in a register (the stack is 512 bytes)
        "    const volatile struct ig_krow *t = r;",
        *(f"    r->p[{i}] = {test};" for i, test in enumerate(predicates.tests)),
        *(f"    {note}" for note in notes),
        "    ig_apply(r);",
        "}",
        "#define IG_KERNEL_METRICS_UPDATE() do { struct ig_krow *ig_row__ = ig_row_slot(); if (ig_row__) { "
        + " ".join(cells.fills) + " ig_kernel_metrics(ig_row__); } } while (0)",
        "",
    ]
    counter_size = 8 + EXEMPLAR.size if exemplars else 8
    return Generated("\n".join([*head, *dispatch]), tuple(layouts), key_size, counter_size, hist_size, table.rows,
                     table.width)


def in_process_context(schema) -> bool:
    """Whether the gadget's program runs in the context of the process behind each event, so that
    bpf_get_current_pid_tgid() names it: the gadget reads its `pid` in the kernel (trace dns, a
    socket filter, does not)."""
    pid = schema.get("pid")
    return pid is not None and pid.kernel is not None


def _apply(shapes: "_Shapes", metrics: int, buckets: int, exemplars: bool = False) -> list[str]:
    """The one map-update path of every metric: a loop over the metrics (clang keeps it a loop; the
    verifier walks it once per metric), which updates those the event matched (`on`) with the key
    of their shape and their index; counters' shapes come first."""
    counter = [
        "u64 *v = ig_counts.lookup(k);",
        "if (!v) { u64 zero = 0; ig_counts.insert(k, &zero); v = ig_counts.lookup(k); }",
        "if (!v) { ig_kernel_drop(j); continue; }",
        "__sync_fetch_and_add(v, amount);",
    ]
    if exemplars:   # the count, then (plain stores after the add) the event's process and time
        counter = [
            "struct ig_cval *v = ig_counts.lookup(k);",
            "if (!v) { struct ig_cval zero = {}; ig_counts.insert(k, &zero); v = ig_counts.lookup(k); }",
            "if (!v) { ig_kernel_drop(j); continue; }",
            "__sync_fetch_and_add(&v->n, amount);",
            "v->pid_tgid = bpf_get_current_pid_tgid();",
            "v->ns = bpf_ktime_get_ns();",
        ]
    histogram = [
        "struct ig_hist *v = ig_hists.lookup(k);",
        "if (!v) {",
        "    u32 zero = 0;",
        "    struct ig_hist *empty = ig_zero.lookup(&zero);",
        "    if (empty) { ig_hists.insert(k, empty); v = ig_hists.lookup(k); }",
        "}",
        "if (!v) { ig_kernel_drop(j); continue; }",
        "u32 idx = r->bucket[j];",
        f"if (idx > {buckets - 1}) idx = {buckets - 1};",
        "__sync_fetch_and_add(&v->b[idx], 1);",
        "__sync_fetch_and_add(&v->sum, amount);",
    ]
    if exemplars:   # after the adds: the event's field, process and bucket in one word, and time
        histogram += [
            "v->seen = amount;",
            "v->tgid_bucket = (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | idx;",
            "v->ns = bpf_ktime_get_ns();",
        ]
    native = [
        # the key of the series, then the bucket: copied into the row (the stack is 512 bytes)
        "__builtin_memcpy(&r->nk.k, k, sizeof(struct ig_key));",
        "r->nk.b = r->nb[j];",
        "struct ig_nval *v = ig_native.lookup(&r->nk);",
        "if (!v) { struct ig_nval zero = {}; ig_native.insert(&r->nk, &zero); v = ig_native.lookup(&r->nk); }",
        "if (!v) { ig_kernel_drop(j); continue; }",
        "__sync_fetch_and_add(&v->count, 1);",
        "__sync_fetch_and_add(&v->sum, amount);",
    ]
    # the shapes of each map in turn: counters', histograms', native histograms'
    ranges = [(shapes.counters, counter), (shapes.counters + shapes.histograms, histogram), (shapes.count, native)]
    present = [(end, lines) for (end, lines), start in zip(ranges, [0] + [end for end, _ in ranges]) if end > start]
    update = present[-1][1]
    for end, lines in reversed(present[:-1]):
        update = [f"if (shape < {end}) {{", *_indented(lines), "} else {", *_indented(update), "}"]
    return [
        "static __always_inline void ig_apply(struct ig_krow *r) {",
        f"    for (u32 j = 0; j < {metrics}; j++) {{",
        "        if (!r->on[j]) continue;",
        # `on` read again (it is volatile): clang cannot fold the two tests into one the verifier
        # cannot follow as a bound of `shape`
        "        u32 shape = r->on[j] - 1;",
        f"        if (shape >= {shapes.count}) continue;",
        f"        u64 amount = {_amount(shapes)};",
        "        struct ig_key *k = &r->keys[shape];",
        "        k->metric = j;",
        *(f"        {line}" for line in update),
        "        ig_updated();",
        "    }",
        "}",
    ]


def _amount(shapes: "_Shapes") -> str:
    """What hit `j` of `shape` adds: 1 for the PLAIN shapes (first), else its `amount`."""
    if shapes.plain == 0:
        return "r->amount[j]"
    if shapes.plain == shapes.count:
        return "1"
    return f"shape < {shapes.plain} ? 1 : r->amount[j]"


def _indented(lines: list[str]) -> list[str]:
    return [f"    {line}" for line in lines]


class _Predicates:
    """Each distinct selector test once per event, its result kept in the row (`r->p[i]`)."""

    def __init__(self) -> None:
        self.tests: list[str] = []
        self._index: dict[str, int] = {}

    def of(self, test: str) -> str:
        if test in ("0", "1"):   # a test known without the event
            return test
        index = self._index.get(test)
        if index is None:
            index = self._index[test] = len(self.tests)
            self.tests.append(test)
        return f"r->p[{index}]"


class _Shapes:
    """The keys metrics fill the same way (the same map, the same key columns): each built once per
    event in the row (`r->keys[shape]`), counters' shapes first."""

    def __init__(self, cells: _Cells, key_cell: str, key_size: int, metrics: list[tuple[int, "_Fields"]]) -> None:
        distinct = sorted(dict.fromkeys(metrics), key=lambda shape: shape[0])   # in order of first use
        self.index = {shape: i for i, shape in enumerate(distinct)}
        self.count = max(1, len(distinct))
        self.plain = sum(1 for kind, _ in distinct if kind == PLAIN)
        self.counters = sum(1 for kind, _ in distinct if kind < HISTOGRAM)
        self.histograms = sum(1 for kind, _ in distinct if kind == HISTOGRAM)
        self.builds: list[str] = []
        self.formats: dict[tuple[int, _Fields], list[str]] = {}
        for shape, i in self.index.items():
            assigns, formats = _key(shape[1], cells, key_size)
            self.formats[shape] = formats
            self.builds.append(f"__builtin_memset(&r->keys[{i}], 0, sizeof(struct ig_key));")
            self.builds.append(f"r->keys[{i}].ck = (u64){key_cell};")
            self.builds.extend(a.replace("k.", f"r->keys[{i}].", 1) for a in assigns)


# What a metric adds, in the order of its shapes: 1 (PLAIN), its field, or its field to a histogram
# (classic or native).
PLAIN, SUMMED, HISTOGRAM, NATIVE_HISTOGRAM = 0, 1, 2, 3


def _kind(bound) -> int:
    if bound.metric_type.buckets:
        return HISTOGRAM if bound.native is None else NATIVE_HISTOGRAM
    return PLAIN if bound.field_column is None else SUMMED


def _key(fields: "_Fields", cells: _Cells, key_size: int) -> tuple[list[str], list[str]]:
    """The statements that fill a key's words (`k.w`) from the row, and the key's struct format."""
    assigns, formats, word = [], ["Q", "Q"], 0
    for column in fields.ints:
        assigns.append(f"k.w[{word}] = (u64){cells.cell(column)};")
        formats.append("q" if _signed(column) else "Q")
        word += 1
    for column in fields.strings:
        size = char_array_size(_kernel(column).ctype)
        assigns.append(f"__builtin_memcpy(&k.w[{word}], {cells.cell(column)}, {size});")
        formats.append(f"{size}s")
        if size % 8:
            formats.append(f"{-size % 8}x")
        word += -(-size // 8)
    used = 8 * (2 + word)
    if used < key_size:
        formats.append(f"{key_size - used}x")
    return assigns, formats


def _fields(placement: Placement) -> _Fields:
    columns = placement.key_columns
    return _Fields(tuple(c for c in columns if not char_array_size(_kernel(c).ctype)),
                   tuple(c for c in columns if char_array_size(_kernel(c).ctype)))


def _metric(index: int, bound, placement: Placement, fields: _Fields, cells: _Cells, schema, shapes: _Shapes,
            predicates: _Predicates, buckets: int, table: "_NativeTable"):
    native = _kind(bound) == NATIVE_HISTOGRAM
    histogram = _kind(bound) == HISTOGRAM
    shape = shapes.index[(_kind(bound), fields)]
    tests = []
    for selector in placement.kernel_selectors:
        column = schema.get(selector.column)
        test = predicates.of(_selector_test(selector, column, cells.cell(column).replace("r->", "t->", 1)))
        tests.append(f"({test} ^ 1)" if selector.negated else test)
    # branch-free: tests are 0 or 1, so & is && and ^ 1 is !
    on = " & ".join(tests) if tests else "1"
    field = None if bound.field_column is None else schema.get(bound.field_column)
    statements = [f"r->on[{index}] = ({on}) * {shape + 1};"]
    if field is not None:
        statements.append(f"r->amount[{index}] = (u64){cells.cell(field)};")
    key_format = "".join(shapes.formats[(_kind(bound), fields)])
    if native:
        assert field is not None   # a histogram observes its field (config checks)
        statements.append(f"if (r->on[{index}]) {table.bucket(index, bound, cells.cell(field), _signed(field))}")
        value = struct.Struct("<Q" + ("q" if _signed(field) else "Q"))
        key_format += "Q"
    elif histogram:
        assert field is not None   # a histogram observes its field (config checks)
        width = len(bound.bounds) + 1
        statements.append(f"if (r->on[{index}]) {{ u32 idx = 0; "
                          f"{bucket_index(cells.cell(field), _signed(field), bound.bounds, 'idx')} "
                          f"if (idx > {width - 1}) idx = {width - 1}; r->bucket[{index}] = idx; }}")
        value = struct.Struct("<" + "Q" * width + "x" * 8 * (buckets - width) + ("q" if _signed(field) else "Q"))
    else:
        value = struct.Struct("<q" if field is not None and _signed(field) else "<Q")
    # never the metric's name in a comment: no config text reaches the C
    text = " ".join(statements) + f"   /* metric {index} */"
    ordered = fields.ints + fields.strings   # the key's order; labels keep the config's through `order`
    order = tuple(ordered.index(c) for c in placement.key_columns)
    decoders = tuple(_decoder(c) for c in placement.key_columns)
    layout = Layout(index, NATIVE if native else HISTOGRAMS if histogram else COUNTERS,
                    struct.Struct("<" + key_format), order, decoders, value, histogram, native)
    return text, layout


class _NativeTable:
    """The native histograms of a program: their thresholds' rows in `ig_nthr` (ROWS per metric),
    the map of their buckets, and the search of a bucket (igcore.kernel.native)."""

    UNREADY = "0xffffffffffffffffULL"   # a row user space has not written yet

    def __init__(self, natives: list, schema) -> None:
        self.slots = {id(bound): slot for slot, bound in enumerate(natives)}
        self.tables: list[Thresholds] = [
            thresholds(bound.native, _kernel(schema.get(bound.field_column)).ctype) for bound in natives]
        self.width = 1 << max([t.schema for t in self.tables] + [0])
        self.rows = tuple((slot * ROWS + k, row) for slot, table in enumerate(self.tables)
                          for k, row in enumerate(table.rows) if row is not None)

    def structs(self) -> list[str]:
        if not self.tables:
            return []
        return ["struct ig_nkey { struct ig_key k; u64 b; };",
                "struct ig_nval { u64 count; u64 sum; };",
                f"struct ig_nrow {{ u64 ready; s64 base; u64 t[{self.width}]; }};"]

    def row_fields(self, metrics: int) -> str:
        return f"u64 nb[{metrics}]; struct ig_nkey nk; " if self.tables else ""

    def declarations(self, entries: int) -> list[str]:
        if not self.tables:
            return []
        mask = self.width - 1
        steps, step = [], self.width >> 1
        while step:   # how many thresholds are below `a`: native.count_below
            steps.append(f"    if (t->t[(lo + {step - 1}) & {mask}] < a) lo += {step};")
            step >>= 1
        # the bit position of a > 0 without a branch (BPF has no bit scan): each step asks whether
        # the upper half is non-zero by an addition that carries into the next bit only then
        fls = [f"    s = ((x >> {half}) + {(1 << half) - 1}ULL) >> {half}; s *= {half}; x >>= s; k += s;"
               for half in (32, 16, 8, 4, 2, 1)]
        return [
            f"BPF_F_TABLE(\"hash\", struct ig_nkey, struct ig_nval, {NATIVE}, {max(1, entries)}, IG_KERNEL_MAP_FLAGS);",
            f"BPF_ARRAY({NATIVE_TABLE}, struct ig_nrow, {len(self.tables) * ROWS});",
            "static __always_inline u64 ig_native_bucket(u32 slot, u64 a, u64 side, u64 zero_max) {",
            "    if (a <= zero_max) return 0;",
            "    u64 x = a, s, k = 0;",
            *fls,
            f"    u32 row = slot * {ROWS} + (u32)k;",
            f"    struct ig_nrow *t = {NATIVE_TABLE}.lookup(&row);",
            f"    if (!t || !t->ready) return {self.UNREADY};",
            "    u32 lo = 0;",
            *steps,
            f"    if (t->t[lo & {mask}] < a) lo += 1;",
            "    return (side << 32) | (u32)(t->base + lo);",
            "}",
        ]

    def bucket(self, index: int, bound, cell: str, signed: bool) -> str:
        """The statement that notes the bucket of metric `index` (or drops the event)."""
        slot, zero_max = self.slots[id(bound)], self.tables[self.slots[id(bound)]].zero_max
        if signed:
            magnitude = f"({cell} < 0 ? (u64)0 - (u64){cell} : (u64){cell})"
            side = f"({cell} < 0 ? {NEGATIVE} : {POSITIVE})"
        else:
            magnitude, side = f"(u64){cell}", f"{POSITIVE}"
        return (f"{{ u64 b = ig_native_bucket({slot}, {magnitude}, {side}, {zero_max}ULL); "
                f"if (b == {self.UNREADY}) {{ r->on[{index}] = 0; ig_kernel_drop({index}); }} "
                f"else r->nb[{index}] = b; }}")
