#!/usr/bin/env python3
"""Draws each panel of the Grafana dashboard (grafana/dashboards/ig.json) as a PNG, from the same
PromQL against a Prometheus server: the dashboard at a glance, without a Grafana.

  .venv/bin/python tools/monitoring/render-dashboard.py --prometheus http://127.0.0.1:9090 --out DIR \
      [--container NAME ...]

`--container` keeps only the named containers' series (docs/guide.md draws its pictures so, leaving
out whatever else runs on the machine): every series selector of the panels' PromQL gets a
`k8s_container` matcher. Time series panels are drawn as lines (one per series, named by the panel's legend format); the
heatmap as Grafana draws a `format: heatmap` target: cumulative `le` buckets turned into the count
of each bucket, at each step.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # files only: no display needed
import matplotlib.pyplot as plt

DASHBOARD = Path(__file__).resolve().parent / "grafana" / "dashboards" / "ig.json"

# Docker's container names; anything else is refused rather than pasted into PromQL.
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
# PromQL words that are not metric names (aggregations and keywords may stand before a `by (...)`).
KEYWORDS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
            "quantile", "limitk", "limit_ratio", "and", "or", "unless", "offset", "bool", "by", "without", "on",
            "ignoring", "group_left", "group_right", "atan2", "start", "end", "inf", "nan"}
# What a selector may sit beside: strings, ranges and label lists are skipped whole; a name not
# followed by `(` (a function call) is a series selector, with or without its `{...}`.
TOKENS = re.compile(r"""
    "(?:[^"\\]|\\.)*" | '(?:[^'\\]|\\.)*'
  | \[[^\]]*\]
  | \b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)
  | (?<![\w:.])(?P<name>[a-zA-Z_:][\w:]*)(?![\w:])(?P<labels>\s*\{[^}]*\})?(?!\s*\()
""", re.X)


def only_containers(expr: str, containers: list[str]) -> str:
    """EXPR with `k8s_container=~"a|b"` added to each of its series selectors."""
    alternatives = "|".join(name.replace(".", "\\\\.") for name in containers)
    matcher = f'k8s_container=~"{alternatives}"'

    def add(m: re.Match) -> str:
        name = m.group("name")
        if not name or name in KEYWORDS:
            return m.group(0)
        labels = (m.group("labels") or "{}").strip()[1:-1].strip().rstrip(",")
        return f"{name}{{{labels + ', ' if labels else ''}{matcher}}}"

    return TOKENS.sub(add, expr)


def container_name(text: str) -> str:
    if not CONTAINER_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a container name: {text!r}")
    return text


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise SystemExit(f"Prometheus refused {expr!r}: {body.get('error')}")
    return body["data"]["result"]


def legend(fmt: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt or "")
    return text.strip() or ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"


def draw_timeseries(ax, series: list[tuple[str, dict]], end: float) -> None:
    for target_legend, result in series:
        for s in result:
            xs = [float(t) - end for t, _ in s["values"]]
            ys = [float(v) for _, v in s["values"]]
            ax.plot(xs, ys, label=legend(target_legend, s["metric"]))
    if any(result for _, result in series):
        ax.legend(fontsize="small", loc="upper left")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("seconds (0: when drawn)")


def draw_heatmap(ax, result: list[dict], end: float, step: float) -> None:
    buckets = sorted(result, key=lambda s: float(s["metric"]["le"]))
    if not buckets:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    # One grid of steps for every bucket: a bucket with no sample at a step counts 0 there.
    times = sorted({float(t) for s in buckets for t, _ in s["values"]})
    cumulative = []
    for s in buckets:
        values = {float(t): float(v) for t, v in s["values"]}
        cumulative.append([values.get(t, 0.0) for t in times])
    counts = [cumulative[0]] + [[b - a for a, b in zip(lower, upper)]
                                for lower, upper in zip(cumulative, cumulative[1:])]
    # Each column is centred on its step, so a range with a single step still has a width.
    image = ax.imshow(counts, aspect="auto", origin="lower", cmap="magma",
                      extent=(times[0] - step / 2 - end, times[-1] + step / 2 - end, 0, len(buckets)))
    ax.figure.colorbar(image, ax=ax, label="observations")
    ax.set_yticks([i + 0.5 for i in range(len(buckets))], [s["metric"]["le"] for s in buckets], fontsize="x-small")
    ax.set_ylabel("bucket upper bound (le)")
    ax.set_xlabel("seconds (0: when drawn)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=5.0, help="how far back the panels go")
    parser.add_argument("--container", type=container_name, action="append", default=[],
                        help="draw only this container's series (repeat for more); default: every container")
    args = parser.parse_args()
    end = time.time()
    start = end - args.minutes * 60
    step = max(1.0, args.minutes * 60 / 300)
    args.out.mkdir(parents=True, exist_ok=True)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    for panel in panels:
        fig, ax = plt.subplots(figsize=(10, 3.6), dpi=80)
        targets = panel.get("targets", [])
        exprs = [only_containers(t["expr"], args.container) if args.container else t["expr"] for t in targets]
        results = [(t.get("legendFormat", ""), query_range(args.prometheus, expr, start, end, step))
                   for t, expr in zip(targets, exprs)]
        if panel["type"] == "heatmap":
            draw_heatmap(ax, results[0][1], end, step)
        else:
            draw_timeseries(ax, results, end)
        ax.set_title(panel["title"])
        fig.tight_layout()
        name = re.sub(r"[^a-z0-9]+", "-", panel["title"].lower()).strip("-") + ".png"
        fig.savefig(args.out / name)
        plt.close(fig)
    print(f"drew {len(panels)} panels in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
