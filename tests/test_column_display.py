"""How `ig trace` and `ig snapshot` show a column is the column's own declaration (`Column.width`,
`Column.hidden`, docs/plugins.md, Schema), read by the live view's layout."""

from __future__ import annotations

import pytest

from igcore.columns import Column, Kind, Schema
from igcore.gadgets import Category, GadgetSpec
from igcore.live import _columns
from igcore.livetable import layout
from igcore.plugins import load_catalog


def test_a_declared_width_is_the_columns_usual_width():
    columns = [Column("k8s.container", Kind.STR, width=20), Column("where", Kind.STR, width=40),
               Column("pid", Kind.INT), Column("ok", Kind.BOOL)]
    assert layout(columns, None).widths == [20, 40, 7, 5]   # wide: each at its usual width
    assert layout([Column("a_long_column_name", Kind.INT, width=3)], None).widths == [18]   # a header is never cut


@pytest.mark.parametrize("bad", [{"width": 0}, {"width": 201}, {"width": "40"}, {"width": True}, {"width": 4.0},
                                 {"hidden": "yes"}, {"hidden": 1}])
def test_a_plugins_display_declaration_is_checked(bad):
    with pytest.raises(ValueError, match="column 'x': (width|hidden) must be"):
        Column("x", Kind.STR, **bad)


def test_hidden_columns_are_left_out_unless_asked_for():
    schema = Schema.with_container_columns([Column("pid", Kind.INT), Column("raw_id", Kind.UINT, hidden=True),
                                            Column("comm", Kind.STR)])
    spec = GadgetSpec(Category.TRACE, "t", "", schema, factory=lambda ctx: None)
    assert _columns(spec, None) == ["k8s.container", "pid", "comm"]
    assert _columns(spec, "raw_id,pid") == ["raw_id", "pid"]


def test_the_shipped_gadgets_hide_their_raw_ids_and_timestamps():
    catalog = load_catalog()
    for category in ("trace", "snapshot"):
        for name in catalog.names(category):
            spec = catalog.get(category, name)
            for column in spec.columns:
                if column.name in ("timestamp", "cgroup_id", "mntns", "netns"):
                    assert column.hidden, f"{category} {name}: {column.name}"
