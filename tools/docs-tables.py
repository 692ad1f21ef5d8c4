#!/usr/bin/env python3
"""The parts of the docs that restate the code, generated from it so they cannot drift:
docs/config.md's metric types, column tables and ig's own metrics, docs/plugins.md's list of
shipped distributions.

  .venv/bin/python tools/docs-tables.py          rewrite the text between the markers
  .venv/bin/python tools/docs-tables.py --check  exit 1 (and say which) if the docs differ

Only gadgets shipped from this repository are listed (their distributions live under plugins/);
test gadgets and third-party plugins installed beside them are left out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from igcore.collector import OF_CONFIG, SELF_METRICS
from igcore.columns import CONTAINER_COLUMN_NAMES, CONTAINER_COLUMNS, POD_LABEL_PATTERN, Column, Kind, by_container
from igcore.config import load_config_text
from igcore.errors import ConfigError
from igcore.gadgets import GadgetSpec
from igcore.metrictypes import METRIC_TYPES, MetricType
from igcore.plugins import BUILTIN_DISTRIBUTIONS, GadgetCatalog, load_catalog

ROOT = Path(__file__).resolve().parents[1]
TOOL = "tools/docs-tables.py"

_NUMERIC = (Kind.INT, Kind.UINT, Kind.FLOAT)


def shipped_distributions() -> set[str]:
    names = set()
    for project in ROOT.glob("plugins/*/pyproject.toml"):
        for line in project.read_text().splitlines():
            if line.startswith("name = "):
                names.add(line.split("=", 1)[1].strip().strip('"'))
                break
    return names


def shipped_gadgets(catalog: GadgetCatalog) -> list[GadgetSpec]:
    shipped = shipped_distributions()
    return [spec for _, spec in sorted(catalog.gadgets.items()) if spec.distribution in shipped]


def _rows(columns: list[Column]) -> list[str]:
    # "kernel": known to the gadget's eBPF program, so metrics may be computed there (Where a metric is computed)
    out = ["| column | kind | kernel | description |", "| --- | --- | --- | --- |"]
    for c in columns:
        aliases = f" (alias {', '.join(f'`{a}`' for a in c.aliases)})" if c.aliases else ""
        kernel = "yes" if c.kernel is not None else "by key" if by_container(c.name) else ""
        out.append(f"| `{c.name}`{aliases} | {c.kind.value} | {kernel} | {c.description.replace('|', '/')} |")
    return out


def column_tables(catalog: GadgetCatalog) -> str:
    parts = ["### Every gadget", "", *_rows([*CONTAINER_COLUMNS, POD_LABEL_PATTERN])]
    for spec in shipped_gadgets(catalog):
        own = [c for c in spec.columns if c.name not in CONTAINER_COLUMN_NAMES]
        parts += ["", f"### {spec.category.value} {spec.name}", "",
                  f"{spec.description} (distribution `{spec.distribution}`)", "", *_rows(own)]
    return "\n".join(parts)


def _allows(catalog: GadgetCatalog, spec: GadgetSpec, kind: MetricType) -> bool:
    """Whether `ig prometheus --check` accepts a metric of this type on this gadget (with some field)."""
    fields = [c.name for c in spec.columns if c.kind in _NUMERIC] if kind.observes else [None]
    bucket = ", bucket: {type: exp2, min: 0, max: 4}" if kind.buckets else ""
    for field in fields:
        extra = f", field: {field}{bucket}" if field else bucket
        text = (f"metrics_name: docs\nmetrics:\n  - {{name: m, type: {kind.name}, category: {spec.category.value}, "
                f"gadget: {spec.name}{extra}}}\n")
        try:
            load_config_text(text, "docs", catalog)
        except ConfigError:
            continue
        return True
    return False


def metric_types(catalog: GadgetCatalog) -> str:
    """The table of types (igcore.metrictypes), each with what its value is and where it is accepted."""
    rows = ["| type | gadgets | value |", "| --- | --- | --- |"]
    for kind in METRIC_TYPES.values():
        allowed: dict[str, list[str]] = {}
        for spec in shipped_gadgets(catalog):
            if _allows(catalog, spec, kind):
                allowed.setdefault(spec.category.value, []).append(spec.name)
        gadgets = "; ".join(f"{category} ({', '.join(names)})" for category, names in allowed.items())
        rows.append(f"| {kind.name} | {gadgets} | {kind.value} |")
    return "\n".join(rows)


def distributions(catalog: GadgetCatalog) -> str:
    """The distributions ig ships (those that keep their gadgets' names), each with its gadgets."""
    gadgets: dict[str, list[str]] = {}
    for spec in shipped_gadgets(catalog):
        gadgets.setdefault(spec.distribution, []).append(f"{spec.category.value} {spec.name}")
    return "\n".join(f"- `{d}`: {', '.join(gadgets.get(d, ['(not installed)']))}"
                     for d in sorted(BUILTIN_DISTRIBUTIONS))


def self_metrics(catalog: GadgetCatalog) -> str:
    """ig's own metrics (igcore.collector.SELF_METRICS), each label with the values exported from 0."""
    rows = ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
    for m in SELF_METRICS.values():
        labels = []
        for label in m.labels:
            values = m.known.get(label)
            of = (": " + ", ".join(f"`{v}`" for v in values)) if values else (f" ({OF_CONFIG[label]})"
                                                                            if label in OF_CONFIG else "")
            labels.append(f"`{label}`{of}")
        meaning = f"{m.help} {m.note}".strip().replace("|", "/")
        rows.append(f"| `{m.exposed}` | {m.type} | {'; '.join(labels)} | {meaning} |")
    return "\n".join(rows)


# (document, marker key, generator)
REGIONS: list[tuple[str, str, Callable[[GadgetCatalog], str]]] = [
    ("docs/config.md", "metric types", metric_types),
    ("docs/config.md", "columns", column_tables),
    ("docs/config.md", "self metrics", self_metrics),
    ("docs/plugins.md", "shipped distributions", distributions),
]


def spliced(text: str, key: str, body: str) -> str:
    begin, end = f"<!-- {key}: generated by {TOOL} -->", f"<!-- {key}: end -->"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def main() -> int:
    catalog = load_catalog()
    stale = []
    for doc in dict.fromkeys(d for d, _, _ in REGIONS):
        path = ROOT / doc
        text = path.read_text()
        new = text
        for _, key, generate in (r for r in REGIONS if r[0] == doc):
            new = spliced(new, key, generate(catalog))
        if new == text:
            continue
        if "--check" in sys.argv[1:]:
            stale.append(doc)
        else:
            path.write_text(new)
    if stale:
        print(f"{', '.join(stale)}: the generated parts differ from the code; run .venv/bin/python {TOOL}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
