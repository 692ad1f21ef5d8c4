"""ig's own metrics exist at 0 from the first scrape for every label value known in advance
(docs/config.md, ig's own metrics): a real `ig prometheus` with the monitoring config, scraped once
before any event it could count, and every `ig_` family it exposes is one the docs' table lists."""

from __future__ import annotations

import ast
import re
from itertools import product
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tools" / "monitoring" / "ig-config.yaml"

# What docs/config.md promises, written down here so the scrape is checked against the docs, not
# against the code that makes it.
GADGET_COMPONENTS = {"aggregate", "collect", "enricher.retry", "netns", "sink", "transport"}
PROCESS_COMPONENTS = {"config-watch", "containers.docker-events", "containers.pod-watch", "containers.refresh",
                      "containers.state-dirs", "containers.state-watch", "containers.subscriber", "http",
                      "series-sweep"}
SOURCES = {"containers.node", "containers.cgroups"}   # the container sources every ig runs
CLOSE_REASONS = {"bad_request", "client_san", "evicted", "idle_timeout", "over_limit", "pipelined",
                 "plain_http_on_tls", "read_timeout", "tls_handshake", "web_config", "write_timeout"}
STATUS_CODES = {"200", "400", "401", "404", "405", "429", "431", "500", "503", "505"}


def expected_series(config: dict) -> dict[str, list[dict]]:
    """family -> the label sets (or a part of each) it must have at start, for this config."""
    metrics = config["metrics"]
    gadgets = sorted({(m["category"], m["gadget"]) for m in metrics})
    every = [{"category": c, "gadget": g} for c, g in gadgets]
    trace = [g for g in every if g["category"] == "trace"]
    snapshot = [g for g in every if g["category"] == "snapshot"]
    names = [{"metric": m["name"]} for m in metrics]
    trace_names = [n for n, m in zip(names, metrics) if m["category"] == "trace"]

    def times(sets: list[dict], label: str, values) -> list[dict]:
        return [{**s, label: v} for s, v in product(sets, sorted(values))]

    return {
        "ig_gadget_running": every,
        "ig_gadget_failed": times(every, "reason", {"start_failed", "thread_died"}),
        "ig_bad_rows_total": [{**g, "column": "", "reason": "not_a_dict"} for g in every]
        + [{**g, "column": "comm", "reason": r} for g in every for r in ("missing_column", "wrong_type")
           if g["gadget"] == "exec"],
        "ig_events_received_total": every,
        "ig_events_lost_total": every,
        "ig_events_held_total": every,
        "ig_events_dropped_total": times(every, "reason", {"decode_error", "host"}) + times(trace, "reason", {"bad_row"}),
        "ig_series": names,
        "ig_series_dropped_total": names,
        "ig_series_expired_total": times(trace_names, "reason", {"container_gone", "idle", "evicted"}),
        "ig_snapshots_total": snapshot,
        "ig_snapshot_duration_seconds": snapshot,
        "ig_snapshot_errors_total": times(snapshot, "reason", {"exception", "timeout"}),
        "ig_config_reloads_total": times([{}], "result", {"success", "failure"}),
        "ig_metric_aggregation": names,
        "ig_loop_errors_total": times([{"gadget": ""}], "component", {*PROCESS_COMPONENTS, *SOURCES})
        + [{"component": c, "gadget": f"{g['category']} {g['gadget']}"} for g in every for c in GADGET_COMPONENTS],
        "ig_http_connections_closed_total": times([{}], "reason", CLOSE_REASONS),
        "ig_http_responses_total": times([{}], "code", STATUS_CODES),
        "ig_config_info": [{}],
        "ig_info": [{}],
    }


def started_scrape(ig, gadgets: int) -> dict:
    """The `ig_` families of the first scrape once every gadget of the config started (ig serves
    while its programs compile)."""
    def scrape():
        families = {f.name: f for f in text_string_to_metric_families(ig.text()) if f.name.startswith("ig_")}
        running = families.get("ig_gadget_running")
        return families if running is not None and len(running.samples) == gadgets else None
    return wait_until(scrape, "every gadget of the config to start", timeout=120, interval=0.2)


def test_every_label_value_known_in_advance_is_at_zero_at_start(require_bpf, run_ig):
    config = yaml.safe_load(CONFIG.read_text())
    ig = run_ig(f"@{CONFIG}")
    families = started_scrape(ig, len({(m["category"], m["gadget"]) for m in config["metrics"]}))
    samples = {}
    for family in families.values():
        for s in family.samples:
            samples.setdefault(s.name, []).append(s.labels)
    missing = {name: [want for want in wanted if not any(want.items() <= got.items() for got in samples.get(name, []))]
               for name, wanted in expected_series(config).items()}
    absent = {name: m for name, m in missing.items() if m}
    assert not absent, absent
    # and every ig_ family exposed is one the docs' table lists, with its type, labels and help
    from igcore.collector import GADGET_COUNTER, SELF_METRICS
    exposed = {f.name: (f.type, sorted({k for s in f.samples for k in s.labels}), f.documentation)
               for f in families.values()}
    listed = {m.name: (m.type, sorted(m.labels), m.help) for m in SELF_METRICS.values()}
    gadget_counter = {name: ("counter", sorted(GADGET_COUNTER.labels), f"gadget counter {name[len('ig_gadget_'):]}")
                      for name in exposed if name.startswith("ig_gadget_") and name not in listed}
    unlisted = {name: shown for name, shown in exposed.items() if {**listed, **gadget_counter}.get(name) != shown}
    assert not unlisted, unlisted


def _literal_arguments(path: Path, call: str) -> set[str]:
    """The string literals (and f-strings' fixed heads) passed first to `call(...)` in a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(call) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            elif isinstance(arg, ast.Name):
                found.add(f"<{arg.id}>")
            elif isinstance(arg, ast.JoinedStr):
                found.add(ast.unparse(arg))
    return found


def test_every_loop_that_reports_errors_is_exported_from_zero():
    from igcore.containers.sources import docker_events, state_dirs
    from igcore.health import GADGET_COMPONENTS as gadget_components, PROCESS_COMPONENTS as process_components
    named = set()
    for path in (ROOT / "igcore").rglob("*.py"):
        named |= _literal_arguments(path, "loop_errors.record")
    constants = {"<COMPONENT>": {docker_events.COMPONENT, state_dirs.COMPONENT}}
    dynamic = {"f'containers.{source.name}'"}  # the container sources' loops: `containers.<source>`
    resolved = {v for n in named for v in constants.get(n, {n})} - dynamic
    assert resolved - {*gadget_components, *process_components} == set()
    assert named & dynamic == dynamic


def test_every_reason_the_endpoint_closes_for_and_code_it_sends_is_exported_from_zero():
    from igcore.collector import CLOSE_REASONS as close_reasons, STATUS_CODES as status_codes
    http = ROOT / "igcore" / "http.py"
    reasons = _literal_arguments(http, "_Close") | set(re.findall(r'self\.closed\["(\w+)"\]', http.read_text()))
    assert reasons and reasons <= set(close_reasons)
    codes = set(re.findall(r"(?:_Refusal\(|_send\(writer, |return |_answer\()(\d{3})\b",
                           http.read_text() + (ROOT / "igcore" / "probes.py").read_text()))
    assert codes and codes <= set(status_codes)
