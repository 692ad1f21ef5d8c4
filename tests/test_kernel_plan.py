"""Where a metric is computed (igcore.kernel.plan) and the C comparisons it is compiled to
(igcore.kernel.ctext), without loading anything: a synthetic gadget declares kernel columns."""

from __future__ import annotations

import dataclasses
import re

import pytest

from igcore.columns import Column, KernelField, Kind, Schema
from igcore.config import load_config_text
from igcore.engine import make_aggregator
from igcore.gadgets import Category, GadgetSpec
from igcore.kernel import KERNEL, SNAPSHOT, USER, place
from igcore.kernel.ctext import bucket_index, int_compare, literal, string_equals
from igcore.kernel.codegen import generate
from igcore.kernel.plan import char_array_size
from igcore.metrictypes import METRIC_TYPES
from igcore.plugins import GadgetCatalog

SCHEMA = Schema.with_container_columns([
    Column("uid", Kind.INT, kernel=KernelField("ev->uid", "u32")),
    Column("retval", Kind.INT, kernel=KernelField("ev->retval", "s32")),
    Column("comm", Kind.STR, kernel=KernelField("ev->comm", "char[16]")),
    Column("qtype", Kind.STR, kernel=KernelField("ev->qtype", "u16", values=(("A", 1), ("AAAA", 28)))),
    Column("args", Kind.STR),
    Column("ratio", Kind.FLOAT),
    Column("cgroup_id", Kind.UINT, kernel=KernelField("ev->cgroup_id", "u64")),
])


def _catalog(container_key: str = "cgroup_id") -> GadgetCatalog:
    trace = GadgetSpec(Category.TRACE, "k", "", SCHEMA, factory=None, container_key=container_key)
    snap = GadgetSpec(Category.SNAPSHOT, "s", "", SCHEMA, factory=None)
    return GadgetCatalog({trace.key: trace, snap.key: snap})


def _placement(metric: str, catalog: GadgetCatalog | None = None, allow: bool = True):
    cfg = load_config_text(f"metrics_name: t\nmetrics:\n  - {metric}\n", "test", catalog or _catalog())
    return place(cfg.metrics[0], allow)


COUNTER = "{{name: m, type: counter, category: trace, gadget: k, {}}}"


HISTOGRAM = "{{name: h, type: histogram, category: trace, gadget: k, field: uid, bucket: {{{}}}}}"


@pytest.mark.parametrize("metric", [
    COUNTER.format("selector: ['uid:>=1000', 'retval:!0', 'comm:cat'], labels: [comm, uid, k8s.pod]"),
    COUNTER.format("selector: ['qtype:AAAA', 'k8s.namespace:~^kube-'], labels: [qtype]"),
    COUNTER.format("field: retval, labels: [retval]"),
    COUNTER.format("selector: ['uid:-1']"),   # a constant no u32 takes: still exact (always false)
    HISTOGRAM.format("type: exp2, min: 0, max: 8, multiplier: 0.5"),   # an integer field, whatever the multiplier
])
def test_kernel_evaluable_metrics_go_to_the_kernel(metric):
    placement = _placement(metric)
    assert placement.where == KERNEL, placement.reason


@pytest.mark.parametrize("metric, container_key, reason", [
    (COUNTER.format("selector: ['comm:~^c']"), "cgroup_id",
     'selector "comm:~^c": regular expressions are evaluated in user space'),
    (COUNTER.format("selector: ['comm:>b']"), "cgroup_id", 'selector "comm:>b": strings are ordered in user space'),
    (COUNTER.format("selector: ['qtype:>A']"), "cgroup_id", 'selector "qtype:>A": strings are ordered in user space'),
    (COUNTER.format("selector: ['uid:>1.5']"), "cgroup_id", 'selector "uid:>1.5": 1.5 is not an integer'),
    (COUNTER.format("selector: ['args:x']"), "cgroup_id",
     'selector "args:x": column args is not known in the gadget\'s eBPF program'),
    (COUNTER.format("labels: [args]"), "cgroup_id", "label args: column args is not known in the gadget's eBPF program"),
    (COUNTER.format("field: ratio"), "cgroup_id", "field ratio: column ratio is not known in the gadget's eBPF program"),
    (COUNTER.format("selector: ['comm:a\ufffd']"), "cgroup_id", "the value holds U+FFFD"),
    (COUNTER.format("labels: []"), "mntns", "container key (mntns)"),   # the gadget's key is no kernel column
    (HISTOGRAM.format("type: linear, min: 0, max: 500"), "cgroup_id", "more than 128 buckets"),
])
def test_user_space_metrics_name_what_keeps_them_there(metric, container_key, reason):
    placement = _placement(metric, _catalog(container_key))
    assert placement.where == USER
    assert reason in placement.reason


def test_the_flag_and_snapshots():
    assert _placement(COUNTER.format("labels: []"), allow=False).reason == "--no-kernel-aggregation is set"
    assert _placement("{name: g, type: gauge, category: snapshot, gadget: s}").where == SNAPSHOT


@pytest.mark.parametrize("ctype, size", [
    ("char[16]", 16), ("char[1]", 1), ("u32", 0), ("char[]", 0), ("char[x]", 0), ("char[-1]", 0), ("char[16] ", 0),
])
def test_char_array_size_reads_only_char_n(ctype, size):
    assert char_array_size(ctype) == size


@pytest.mark.parametrize("kind", [t for t in METRIC_TYPES.values() if t.category is Category.TRACE],
                         ids=lambda t: t.name)
def test_a_trace_type_goes_to_the_kernel_by_its_table_entry(kind):
    """Whether a metric may be computed in BPF maps is its type's entry, not a comparison of names."""
    extra = ", field: uid" if kind.observes else ""
    extra += ", bucket: {type: exp2, min: 0, max: 4}" if kind.buckets else ""
    placement = _placement(f"{{name: m, type: {kind.name}, category: trace, gadget: k{extra}}}")
    assert placement.in_kernel is (kind.kernel is not None), placement.reason


def test_a_type_without_a_kernel_aggregator_is_never_placed_in_the_kernel(monkeypatch):
    """A table entry naming no kernel aggregator keeps its metrics in user space, however simple
    they are, and the engine gives them the entry's user-space aggregator."""
    monkeypatch.setitem(METRIC_TYPES, "plain", dataclasses.replace(METRIC_TYPES["counter"], name="plain", kernel=None))
    cfg = load_config_text("metrics_name: t\nmetrics:\n  - {name: m, type: plain, category: trace, gadget: k, "
                           "selector: ['uid:>=1000'], labels: [comm]}\n", "test", _catalog())
    placement = place(cfg.metrics[0])
    assert placement.where == USER and placement.reason == "a plain is computed in user space only"
    aggregator = make_aggregator(cfg.metrics[0], max_series=10)
    assert type(aggregator) is METRIC_TYPES["plain"].user and aggregator.placement == placement


@pytest.mark.parametrize("value, signed, text", [
    (7, False, "7ULL"),
    ((1 << 64) - 1, False, "18446744073709551615ULL"),
    (-1, True, "-1LL"),
    ((1 << 63) - 1, True, "9223372036854775807LL"),
    (-(1 << 63), True, "(-9223372036854775807LL - 1)"),   # the lowest s64 is no literal of C
])
def test_literal(value, signed, text):
    assert literal(value, signed) == text


@pytest.mark.parametrize("signed, op, value, c", [
    (False, ">", -1, "1"),      # every u64 is > -1
    (False, "=", -1, "0"),
    (False, "<", -1, "0"),
    (True, "<", 1 << 70, "1"),
    (True, ">=", 1 << 70, "0"),
    (True, "=", -(1 << 63), "(v == (-9223372036854775807LL - 1))"),
    (False, "<=", 7, "(v <= 7ULL)"),
    (True, ">", -5, "(v > -5LL)"),
    (False, "=", (1 << 64) - 1, "(v == 18446744073709551615ULL)"),
    (False, ">=", 1 << 64, "0"),
])
def test_int_comparisons_beyond_the_type_give_pythons_answer(signed, op, value, c):
    assert int_compare("v", signed, op, value) == c


@pytest.mark.parametrize("size, text, c", [
    (16, "ab", "(((c[0] & 16777215ULL) == 25185ULL))"),   # "ab" and its NUL, the rest of the word masked
    (4, "abcd", "(((c[0] & 4294967295ULL) == 1684234849ULL))"),   # fills the array: no NUL to test
    (4, "abcde", "0"),    # longer than the array: no row holds it
    (16, "a\0b", "0"),    # a row's text ends at the first NUL
    (16, "", "(((c[0] & 255ULL) == 0ULL))"),
    (16, "01234567", "((c[0] == 3978425819141910832ULL) && ((c[1] & 255ULL) == 0ULL))"),   # the NUL in the next word
])
def test_string_equality_is_up_to_the_first_nul(size, text, c):
    assert string_equals("c", size, text) == c


def _string_test_as_python(size: int, text: str, row: bytes) -> bool:
    """Run the generated word comparisons on `row` (a char[size] read as little-endian u64 words)."""
    padded = row.ljust(-(-size // 8) * 8, b"\xaa")   # what lies beyond the array is never read
    words = [int.from_bytes(padded[i:i + 8], "little") for i in range(0, len(padded), 8)]
    code = string_equals("c", size, text).replace("ULL", "").replace("&&", "and")
    return bool(eval(code, {}, {"c": words}))


@pytest.mark.parametrize("size", [4, 8, 15, 16])
def test_string_words_compare_as_rows_read_text(size):
    """The same answer as the row's text (igcore.bpf.gadget.c_string) for texts of every length,
    equal, prefixed, extended and differing in one byte, with garbage after the NUL."""
    from igcore.bpf.gadget import c_string

    texts = ["", "a", "é", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghijklmno", "abcdefghijklmnop", "x\xff"]
    for text in texts:
        for other in texts:
            raw = other.encode()[:size]
            for row in (raw.ljust(size, b"\0"), (raw + b"\0" + b"\x07" * size)[:size]):
                assert _string_test_as_python(size, text, row) == (c_string(row) == text), (size, text, row)


def _place_like_c(value: int, bounds: tuple[float, ...], signed: bool) -> int:
    """Run the generated bucket-index C (nested ifs) as Python: the same tree, the same answer."""
    code = bucket_index("v", signed, bounds, "idx")
    python = code.replace("ULL", "").replace("LL", "")
    python = python.replace("if (", "if ").replace(") {", ":{").replace("} else {", "}else{")
    namespace = {"v": value}

    def run(text: str) -> None:   # "if cond:{ A }else{ B }" or "idx = n;"
        text = text.strip()
        if text.startswith("idx ="):
            namespace["idx"] = int(text[5:].strip(" ;"))
            return
        cond, _, rest = text[3:].partition(":{")
        depth, split = 1, 0
        for i, ch in enumerate(rest):
            depth += ch == "{"
            depth -= ch == "}"
            if depth == 0:
                split = i
                break
        then, other = rest[:split], rest[split + 1:].strip()[len("else{"):-1]
        run(then if eval(cond, {}, namespace) else other)

    run(python)
    return namespace["idx"]


@pytest.mark.parametrize("bounds", [(0.5, 1.0, 2.0, 4.0), (2.5, 5.0, 7.5), (100000.0, 200000.0, 400000.0, 1e30), (-3.5, 0.0, 2.0)])
def test_bucket_index_places_integers_as_bisect_does(bounds):
    from bisect import bisect_left

    for value in (-5, -4, -3, 0, 1, 2, 3, 4, 5, 7, 8, 99999, 100000, 100001, 10**20):
        signed = value < 0 or bounds[0] < 0
        if not signed and value < 0:
            continue
        assert _place_like_c(value, bounds, True) == bisect_left(bounds, value), (value, bounds)


@pytest.mark.parametrize("rule, value, negated", [('comm:"=cat"', "=cat", False), ('comm:!"=cat"', "=cat", True),
                                                 ('qtype:"AAAA"', "AAAA", False)])
def test_a_quoted_literal_reaches_the_kernel_as_its_value(rule, value, negated):
    """The C compares the unquoted value, as the user-space predicate does (docs/config.md, "Selectors")."""
    cfg = load_config_text(f"metrics_name: t\nmetrics:\n  - {COUNTER.format(f'selector: [{rule!r}]')}\n", "test", _catalog())
    placement = place(cfg.metrics[0])
    assert placement.where == KERNEL, placement.reason
    (selector,) = placement.kernel_selectors
    assert (selector.value, selector.negated, selector.text) == (value, negated, rule)
    code = generate(cfg.metrics[0].spec, [(cfg.metrics[0], placement)], 16).code
    assert '"=cat"' not in code and "AAAA" not in code   # bytes and integers, never the config's text
    if selector.column == "comm":
        cell = re.search(r"t->(\w+)\[0\] & ", code).group(1)
        test = string_equals(f"t->{cell}", 16, "=cat")
        assert f"r->p[0] = {test};" in code   # the test, shared by the metrics that hold it
        assert ("r->on[0] = ((r->p[0] ^ 1)) * 1;" if negated else "r->on[0] = (r->p[0]) * 1;") in code


def _generated(count: int) -> str:
    """The C for `count` counters, each with a selector of its own and one of three shared ones,
    under three label sets (the shape of bench/startup's config of counters with selectors)."""
    shared, labels = ["retval:0", "uid:>=1000", "comm:!cat"], ["[comm]", "[]", "[uid]"]
    metrics = "".join(f"  - {{name: m{i}, type: counter, category: trace, gadget: k, "
                      f"selector: ['comm:c{i}', '{shared[i % 3]}'], labels: {labels[i // 3 % 3]}}}\n"
                      for i in range(count))
    cfg = load_config_text(f"metrics_name: t\nmetrics:\n{metrics}", "test", _catalog())
    return generate(cfg.metrics[0].spec, [(bound, place(bound)) for bound in cfg.metrics], 16).code


def test_a_metric_adds_one_line_of_c_and_each_test_is_evaluated_once():
    """What bounds compile time (docs/config.md, "Start-up and memory"): the C grows by one line
    per metric and one per distinct selector test; the map-update path is written once."""
    few, many = _generated(9).splitlines(), _generated(300).splitlines()   # 9: every label set and shared test
    # 291 more metrics, 291 more distinct comm tests: one line each
    assert len(many) - len(few) == 2 * 291
    code = "\n".join(many)
    for shared in (" == 0LL)", " >= 1000ULL)", string_equals("", 16, "cat")[3:-1]):   # retval, uid, comm tests
        assert code.count(shared) == 1, shared
    assert code.count("ig_counts.insert") == 1
    assert code.count("/* metric ") == 300
