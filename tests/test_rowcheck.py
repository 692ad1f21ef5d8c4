"""RowChecker: every kind's rule, the fast batch pass agreeing with the row-by-row definition, counts and log."""

from __future__ import annotations

import logging
import math
import random

import pytest

from igcore.columns import Column, Kind, Schema
from igcore.rowcheck import BadRows, RowChecker, _problem

SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT), Column("uid", Kind.UINT), Column("ratio", Kind.FLOAT),
    Column("comm", Kind.STR), Column("ok", Kind.BOOL),
])
GOOD = {"pid": -5, "uid": 0, "ratio": 1, "comm": "sh", "ok": False}


def checker():
    return RowChecker(SCHEMA, BadRows("trace test"))


def test_good_batch_is_returned_as_is_and_container_columns_are_not_required():
    check = checker()
    batch = [dict(GOOD), {**GOOD, "ratio": 2.5, "uid": 2**64 - 1}]
    assert check(batch) is batch
    assert check.bad.total == 0


@pytest.mark.parametrize("change, column, reason", [
    ({"pid": "12"}, "pid", "wrong_type"),              # an integer string is still a string
    ({"pid": 1.0}, "pid", "wrong_type"),
    ({"pid": None}, "pid", "wrong_type"),
    ({"uid": -1}, "uid", "negative_uint"),
    ({"uid": "root"}, "uid", "wrong_type"),
    ({"ratio": math.nan}, "ratio", "not_finite"),
    ({"ratio": -math.inf}, "ratio", "not_finite"),
    ({"ratio": 10**400}, "ratio", "not_finite"),        # an int no float can hold
    ({"ratio": "0.5"}, "ratio", "wrong_type"),
    ({"comm": b"sh"}, "comm", "wrong_type"),
    ({"ok": 1}, "ok", "wrong_type"),
])
def test_each_bad_value_is_dropped_and_counted_by_column_and_reason(change, column, reason):
    check = checker()
    batch = [dict(GOOD), {**GOOD, **change}, dict(GOOD)]
    assert check(batch) == [GOOD, GOOD]
    assert check.bad.counts() == {(column, reason): 1}


def test_missing_column_and_not_a_dict():
    check = checker()
    missing = {k: v for k, v in GOOD.items() if k != "uid"}
    assert check([missing, None, ("pid", 1), dict(GOOD)]) == [GOOD]
    assert check.bad.counts() == {("uid", "missing_column"): 1, ("", "not_a_dict"): 2}


def test_every_pair_a_checker_can_count_is_known_in_advance():
    """BadRows.possible holds every (column, reason) the checker can count, so each is exported from 0."""
    check = checker()
    hostile = [None, "x", b"x", -1, 2**70, 1.5, math.nan, math.inf, True, 10**400, [], {}]
    seen = {(name, _problem(kind, value)) for name, kind in check.columns for value in hostile}
    assert {pair for pair in seen if pair[1]} <= set(check.bad.possible)
    assert {("", "not_a_dict"), *((name, "missing_column") for name, _ in check.columns)} <= set(check.bad.possible)
    assert check.bad.counts() == {} and set(check.bad.counts(with_zeros=True)) == set(check.bad.possible)


def test_the_fast_pass_and_the_row_rule_agree_on_random_batches():
    """Whatever a batch holds, the rows kept are exactly those every value of which `_problem` accepts."""
    rnd = random.Random(7)
    odd = [0, -1, 1, 2**70, -(2**70), 0.5, math.nan, math.inf, "1", "", True, False, None, b"x", [], 10**400]
    kinds = {c.name: c.kind for c in SCHEMA if c.name in GOOD}
    for _ in range(400):
        batch = []
        for _ in range(rnd.randrange(1, 6)):
            row = dict(GOOD)
            if rnd.random() < 0.5:
                row[rnd.choice(list(GOOD))] = rnd.choice(odd)
            batch.append(row)
        expected = [r for r in batch if all(_problem(kinds[k], r[k]) is None for k in kinds)]
        assert checker()(batch) == expected


def test_log_names_gadget_column_and_cut_value_once_a_minute(caplog):
    now = [0.0]
    check = RowChecker(SCHEMA, BadRows("trace demo", clock=lambda: now[0]))
    with caplog.at_level(logging.WARNING, logger="igcore.rows"):
        check([{**GOOD, "comm": 7}, {**GOOD, "pid": "y" * 1000}])
        now[0] = 59.0
        check([{**GOOD, "uid": -3}])
        now[0] = 61.0
        check([{**GOOD, "uid": -3}])
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("gadget trace demo: dropped a bad row: column 'comm' is 7 (wrong_type); 1 bad row(s)")
    assert messages[1].startswith("gadget trace demo: dropped a bad row: column 'uid' is -3 (negative_uint); 4 bad row(s)")
    check([{**GOOD, "pid": "y" * 1000}])
    assert check.bad.total == 5
