"""Selector grammar, conversion to column kinds, error messages and the combined predicate."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from igcore.columns import Column, Kind, Schema
from igcore.selectors import RULES, Selector, SelectorError, compile_selector, compile_selectors, literal

SCHEMA = Schema.with_container_columns(
    [
        Column("pid", Kind.INT),
        Column("uid", Kind.UINT),
        Column("retval", Kind.INT, aliases=("ret",)),
        Column("latency", Kind.FLOAT),
        Column("comm", Kind.STR),
        Column("dstIP", Kind.STR),
        Column("name", Kind.STR),
        Column("truncated", Kind.BOOL),
    ]
)


def row(**values) -> dict:
    """A full row (every column present, as gadgets deliver them) with some values set."""
    r = SCHEMA.defaults()
    r.update(values)
    return r


def holds(text: str, **values) -> bool:
    return compile_selector(text, SCHEMA)(row(**values))


# --- rules, each positive and negative ---------------------------------------------------------


@pytest.mark.parametrize(
    "text, values, expected",
    [
        ("comm:cat", {"comm": "cat"}, True),
        ("comm:cat", {"comm": "dog"}, False),
        ("comm:!cat", {"comm": "dog"}, True),
        ("comm:!cat", {"comm": "cat"}, False),
        ("pid:42", {"pid": 42}, True),
        ("pid:42", {"pid": 43}, False),
        ("pid:!42", {"pid": 43}, True),
        ("pid:!42", {"pid": 42}, False),
        ("pid:>=5", {"pid": 5}, True),
        ("pid:>=5", {"pid": 4}, False),
        ("pid:>5", {"pid": 6}, True),
        ("pid:>5", {"pid": 5}, False),
        ("pid:<=5", {"pid": 5}, True),
        ("pid:<=5", {"pid": 6}, False),
        ("pid:<5", {"pid": 4}, True),
        ("pid:<5", {"pid": 5}, False),
        ("pid:!>=5", {"pid": 4}, True),
        ("pid:!>=5", {"pid": 5}, False),
        ("pid:!<5", {"pid": 5}, True),
        ("pid:!<5", {"pid": 4}, False),
        ("retval:-2", {"retval": -2}, True),
        ("retval:<0", {"retval": 0}, False),
        ("uid:>=1000", {"uid": 1000}, True),
        ("uid:1e3", {"uid": 1000}, True),  # an int column compares 1e3 as the number 1000
        ("pid:>1.5", {"pid": 2}, True),
        ("pid:>1.5", {"pid": 1}, False),
        ("latency:<1.5", {"latency": 1.25}, True),
        ("latency:<1.5", {"latency": 1.5}, False),
        ("latency:2", {"latency": 2.0}, True),
        ("latency:>=1e-3", {"latency": 0.001}, True),
        ("comm:~^ca", {"comm": "cat"}, True),
        ("comm:~^ca", {"comm": "scat"}, False),
        ("comm:~at", {"comm": "scat"}, True),  # unanchored search
        ("comm:!~^ca", {"comm": "dog"}, True),
        ("comm:!~^ca", {"comm": "cat"}, False),
        ("comm:>=m", {"comm": "z"}, True),  # text order on a str column
        ("comm:>=m", {"comm": "a"}, False),
        ("comm:", {"comm": ""}, True),  # empty value: equal to the empty string
        ("k8s.namespace:", {"k8s.namespace": "default"}, False),
        ('comm:!"!x"', {"comm": "!x"}, False),  # one `!` negates; the quoted rest, "!x", is the value
        ('comm:!"!x"', {"comm": "x"}, True),
        ('comm:"=cat"', {"comm": "=cat"}, True),
        ('comm:"=cat"', {"comm": "cat"}, False),
        ('comm:!"=cat"', {"comm": "cat"}, True),
        ('comm:!"=cat"', {"comm": "=cat"}, False),
        ('comm:"a\\"b\\\\"', {"comm": 'a"b\\'}, True),  # \" and \\ inside quotes
        ('comm:""', {"comm": ""}, True),
        ('comm:">"', {"comm": ">"}, True),
        ('comm:>="~"', {"comm": "~~"}, True),  # an operator, then a quoted value
        ('comm:~"=c"', {"comm": "x=cat"}, True),  # a quoted pattern
        ('comm:!~"<b>"', {"comm": "a<b>"}, False),
        ('pid:"42"', {"pid": 42}, True),  # quoting changes nothing for a value without operator characters
        ('comm:a"b', {"comm": 'a"b'}, True),  # a quote inside a plain value is itself
    ],
)
def test_rules(text, values, expected):
    assert holds(text, **values) is expected


@pytest.mark.parametrize(
    "text, values, expected",
    [
        ("dstIP:::1", {"dstIP": "::1"}, True),
        ("dstIP:::1", {"dstIP": "::2"}, False),
        ("dstIP:!fe80::1", {"dstIP": "fe80::1"}, False),
        ("name:~^a:b", {"name": "a:bc"}, True),
        ("name:~^a:b", {"name": "xa:b"}, False),
        ("name:a:b:c", {"name": "a:b:c"}, True),
    ],
)
def test_split_on_the_first_colon_only(text, values, expected):
    assert holds(text, **values) is expected


def test_compiled_fields():
    sel = compile_selector("RET:!>=-1", SCHEMA)
    assert isinstance(sel, Selector)
    assert (sel.column, sel.op, sel.value, sel.negated) == ("retval", ">=", -1, True)
    assert type(compile_selector("uid:1e3", SCHEMA).value) is int
    assert type(compile_selector("pid:1.5", SCHEMA).value) is float
    assert type(compile_selector("latency:2", SCHEMA).value) is float
    assert compile_selector("comm:~a:b", SCHEMA).value == "a:b"


@pytest.mark.parametrize("text", ["COMM:cat", "Comm:cat", "DSTIP:cat", "ret:0", "RET:0"])
def test_column_lookup_is_case_insensitive_and_knows_aliases(text):
    sel = compile_selector(text, SCHEMA)
    assert sel.column in ("comm", "dstIP", "retval")


def test_predicate_reads_the_canonical_column():
    assert holds("Ret:3", retval=3)
    assert holds("K8S.NAMESPACE:default", **{"k8s.namespace": "default"})


@pytest.mark.parametrize(
    "text, values, expected",
    [
        ("truncated:true", {"truncated": True}, True),
        ("truncated:TRUE", {"truncated": True}, True),
        ("truncated:1", {"truncated": True}, True),
        ("truncated:true", {"truncated": False}, False),
        ("truncated:False", {"truncated": False}, True),
        ("truncated:0", {"truncated": True}, False),
        ("truncated:!true", {"truncated": False}, True),
        ("truncated:!true", {"truncated": True}, False),
    ],
)
def test_bool(text, values, expected):
    assert holds(text, **values) is expected


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, phrases",
    [
        ("pid:abc", ['selector "pid:abc": "abc" is not a number, but column pid is int']),
        ("pid:", ['selector "pid:": "" is not a number, but column pid is int']),
        ("uid:>=x", ['"x" is not a number, but column uid is uint']),
        ("latency:<fast", ['"fast" is not a number, but column latency is float']),
        ("pid:0x10", ['"0x10" is not a number']),
        ("comn:cat", ['selector "comn:cat": unknown column "comn" (did you mean "comm"?', "columns: pid, uid, retval/ret,"]),
        ("zzzzzz:1", ['unknown column "zzzzzz" (columns: pid,']),
        ("pid:~1", ["~ (regular expression) needs a string column, but column pid is int"]),
        ("truncated:~t", ["needs a string column, but column truncated is bool"]),
        ("comm:~(", ['selector "comm:~(": invalid regular expression "(": missing )']),
        ("comm:~a(?=b)", ["invalid regular expression", "invalid perl operator"]),
        ("truncated:>=1", ["column truncated is bool: only equality", "not >="]),
        ("truncated:!<1", ["only equality"]),
        ("truncated:yes", ['"yes" is not a boolean (use true, false, 1 or 0)']),
        ("comm", ['selector "comm": missing ":" between column and rule']),
        ("", ['selector "": missing ":"']),
        (":cat", ['selector ":cat": no column name before ":"']),
        ("comm\n:x", ['selector "comm\\n:x"']),  # control characters escaped: one line
        ('comm:"=cat', ['a quoted value needs its closing "']),
        ('comm:"a"b', ['text after the closing quote: "b"']),
        ('comm:"a\\n"', ['in a quoted value, \\ escapes only " and \\, not "n"']),
    ],
)
def test_errors(text, phrases):
    with pytest.raises(SelectorError) as info:
        compile_selector(text, SCHEMA)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message
    assert info.value.text == text
    for phrase in phrases:
        assert phrase in message


@pytest.mark.parametrize(
    "text, phrases",
    [
        ("comm:!=cat", ['"!=" is not an operator', "write comm:!cat;", 'quoted: comm:!"=cat"']),
        ("comm:=>cat", ['"=>" is not an operator', "write comm:>=cat;", 'quoted: comm:"=>cat"']),
        ("comm:==cat", ['"==" is not an operator', "write comm:cat;", 'quoted: comm:"==cat"']),
        ("comm:=cat", ['"=" is not an operator', "write comm:cat;"]),
        ("comm:<>cat", ['"<>" is not an operator', "write comm:!cat;"]),
        ("comm:=~^c", ['"=~" is not an operator', "write comm:~^c;"]),
        ("comm:~=c", ['"~=" is not an operator', 'quoted: comm:~"=c"']),
        ("comm:!~!c", ['"!~!" is not an operator', 'quoted: comm:!~"!c"']),
        ("comm:!!x", ['"!!" is not an operator', 'quoted: comm:!"!x"']),
        ("comm:>=<x", ['">=<" is not an operator', 'quoted: comm:>="<x"']),
        ("retval:=>0", ['"=>" is not an operator', "(write retval:>=0)"]),  # not "is not a number"
        ("pid:>==5", ['">==" is not an operator of ig\'s selectors (rules:']),
        ("truncated:!=true", ['"!=" is not an operator', "write truncated:!true"]),
    ],
)
def test_other_languages_operators_are_refused(text, phrases):
    """A value that starts with an operator character would silently mean something else."""
    with pytest.raises(SelectorError) as info:
        compile_selector(text, SCHEMA)
    for phrase in phrases:
        assert phrase in str(info.value)


@pytest.mark.parametrize("text", ["pid:abc", "comn:cat", "comm", "comm:~(", "truncated:yes", "comm:!=cat", 'comm:"x'])
def test_every_error_names_the_rules(text):
    with pytest.raises(SelectorError) as info:
        compile_selector(text, SCHEMA)
    assert str(info.value).endswith(f"({RULES})")
    assert "comm:!cat not equal" in RULES and "pid:>=5 >5 <=5 <5" in RULES and "comm:~regex" in RULES


def test_hints_do_not_echo_hostile_text():
    """Long or multi-line selectors get the short message: the hints would repeat them raw."""
    for text in ["comm:!=" + "x" * 10_000, "comm:!=a\nb"]:
        with pytest.raises(SelectorError) as info:
            compile_selector(text, SCHEMA)
        assert "\n" not in str(info.value) and len(str(info.value)) < 500 and "write" not in str(info.value)


@given(st.text())
def test_literal_round_trips(value):
    """Any text, quoted with literal(), is the value again, on every rule; the text is kept as written."""
    for rule, negated in ((literal(value), False), ("!" + literal(value), True)):
        sel = compile_selector("comm:" + rule, SCHEMA)
        assert (sel.value, sel.op, sel.negated, sel.text) == (value, "=", negated, "comm:" + rule)
    assert compile_selector("comm:>=" + literal(value), SCHEMA).value == value


def test_non_string_selector():
    with pytest.raises(SelectorError, match='selector "5": a selector must be a "column:rule" string'):
        compile_selectors([5], SCHEMA)


def test_invalid_regex_writes_nothing_to_stderr(capfd):
    with pytest.raises(SelectorError):
        compile_selector("comm:~(", SCHEMA)
    assert capfd.readouterr().err == ""


# --- combining ---------------------------------------------------------------------------------


def test_no_selectors_is_none():
    assert compile_selectors([], SCHEMA) is None
    assert compile_selectors((), SCHEMA) is None


def test_all_selectors_must_hold():
    pred = compile_selectors(["comm:~^ca", "pid:>=5", "ret:0", "dstIP:::1"], SCHEMA)
    good = row(comm="cat", pid=5, retval=0, dstIP="::1")
    assert pred(good) is True
    for change in ({"comm": "dog"}, {"pid": 4}, {"retval": 1}, {"dstIP": "::2"}):
        assert pred({**good, **change}) is False


def test_single_selector():
    pred = compile_selectors(["comm:cat"], SCHEMA)
    assert pred(row(comm="cat")) and not pred(row(comm="dog"))


def test_first_bad_selector_is_reported():
    with pytest.raises(SelectorError, match='selector "pid:x"'):
        compile_selectors(["comm:cat", "pid:x", "uid:y"], SCHEMA)


def test_regex_results_stay_right_beyond_the_memo():
    pred = compile_selector("comm:~7$", SCHEMA)
    values = [f"p{i}" for i in range(10_000)]
    assert [v for v in values if pred(row(comm=v))] == [v for v in values if v.endswith("7")]
    assert [v for v in values if pred(row(comm=v))] == [v for v in values if v.endswith("7")]


def test_column_names_cannot_inject_code():
    schema = Schema([Column("a'] or True or row['b", Kind.STR), Column("b", Kind.STR)])
    pred = compile_selectors(["a'] or True or row['b:x", "b:y"], schema)
    assert pred({"a'] or True or row['b": "z", "b": "y"}) is False
    assert pred({"a'] or True or row['b": "x", "b": "y"}) is True


def test_predicate_is_fast():
    # Generous bound (a few hundred ns on a slow machine); catches per-call parsing or loops.
    pred = compile_selectors(["comm:~^ca", "pid:>=5", "k8s.namespace:default"], SCHEMA)
    r = row(comm="cat", pid=7, **{"k8s.namespace": "default"})
    start = time.perf_counter()
    for _ in range(100_000):
        pred(r)
    assert time.perf_counter() - start < 1.0
