"""Gadget names never change hands: a real third-party distribution (tests/plugins/impostor,
installed with pip like any plugin) claims names it may not have, and ig refuses it in one line.

The impostor registers nothing unless IG_TEST_IMPOSTOR says what to claim, so its presence changes
no other test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from igcore.plugins import BUILTIN_DISTRIBUTIONS, load_catalog

ROOT = Path(__file__).resolve().parents[1]
IG = str(Path(sys.executable).with_name("ig"))


def ig(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([IG, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1", **env})


def rows(result: subprocess.CompletedProcess) -> dict[tuple[str, str], list[str]]:
    """`ig list-gadgets` table rows as {(category, gadget): [distribution, version, description]}."""
    out = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 5 and cells[0] in ("trace", "snapshot", "broken"):
            out[(cells[0], cells[1])] = cells[2:]
    return out


def test_builtin_list_is_every_distribution_this_repository_ships():
    shipped = {tomllib.loads(p.read_text())["project"]["name"] for p in ROOT.glob("plugins/*/pyproject.toml")}
    assert shipped == set(BUILTIN_DISTRIBUTIONS)


def test_impostor_is_installed_and_quiet_by_default():
    result = ig("list-gadgets")
    assert result.returncode == 0, result.stderr
    table = rows(result)
    assert table[("trace", "exec")][0] == "ig-gadget-exec"
    assert not any("impostor" in k[1] or "impostor" in v[0] for k, v in table.items()), result.stdout
    assert subprocess.run([sys.executable, "-m", "pip", "show", "ig-gadget-impostor"],
                          capture_output=True).returncode == 0


def test_builtin_keeps_its_name_and_the_impostor_is_refused(monkeypatch):
    result = ig("list-gadgets", IG_TEST_IMPOSTOR="exec")
    assert result.returncode == 0, result.stderr
    table = rows(result)
    assert table[("trace", "exec")][:1] == ["ig-gadget-exec"]
    dist, version, error = table[("broken", "aaa-impostor")]
    assert (dist, version) == ("ig-gadget-impostor", "0.1.0")
    assert error == ("NameCollision: gadget trace exec belongs to ig-gadget-exec, shipped with ig; "
                     "ig-gadget-impostor may not register it")
    # all or nothing: the impostor's other gadget is refused with it
    assert ("trace", "impostor") not in table

    monkeypatch.setenv("IG_TEST_IMPOSTOR", "exec")
    catalog = load_catalog()
    assert catalog.get("trace", "exec").distribution == "ig-gadget-exec"
    assert catalog.get("trace", "impostor") is None


def test_prometheus_runs_the_builtin_and_warns_in_one_line(tmp_path):
    config = "metrics_name: t\nmetrics: [{name: m, type: counter, category: trace, gadget: exec}]"
    result = ig("prometheus", "--check", "--config", config, IG_TEST_IMPOSTOR="exec")
    assert result.returncode == 0, result.stderr
    warnings = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(warnings) == 1, result.stderr
    assert "aaa-impostor" in warnings[0] and "ig-gadget-exec" in warnings[0] and "ig-gadget-impostor" in warnings[0]


def test_two_third_party_distributions_claiming_one_name_are_both_refused():
    result = ig("list-gadgets", IG_TEST_IMPOSTOR="synth", IG_TEST_GADGETS="1")
    assert result.returncode == 0, result.stderr
    table = rows(result)
    assert ("trace", "synth") not in table and ("snapshot", "synth") not in table
    impostor, synthetic = table[("broken", "aaa-impostor")], table[("broken", "synthetic")]
    assert impostor[2] == ("NameCollision: gadget trace synth is registered by both ig-gadget-impostor and "
                           "ig-gadget-synthetic; neither is loaded")
    assert synthetic[2] == ("NameCollision: gadget trace synth is registered by both ig-gadget-synthetic and "
                            "ig-gadget-impostor; neither is loaded")
    assert table[("trace", "exec")][0] == "ig-gadget-exec"  # the rest loads


@pytest.mark.parametrize("mode, error", [
    ("badkey", "ValueError: gadget 'impostor': container_key 'cgroupid' is not one of cgroup_id, mntns, netns"),
    ("nokey", "ValueError: gadget 'impostor': container_key 'netns' is not a column of its schema"),
])
def test_container_key_is_checked_when_the_plugin_registers(mode, error):
    result = ig("list-gadgets", IG_TEST_IMPOSTOR=mode)
    assert result.returncode == 0, result.stderr
    table = rows(result)
    assert table[("broken", "aaa-impostor")] == ["ig-gadget-impostor", "0.1.0", error]
    assert ("trace", "impostor") not in table
    warn = ig("prometheus", "--check", IG_TEST_IMPOSTOR=mode)
    assert warn.returncode == 0, warn.stderr
    assert [l for l in warn.stderr.splitlines() if l.strip()] == [l for l in warn.stderr.splitlines() if "aaa-impostor" in l]
    assert error in warn.stderr and warn.stderr.count("\n") == 1


def test_register_protocol_is_keyword_only_and_matches_the_core():
    import inspect

    from igcore import api
    from igcore.plugins import _Registrar

    def params(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values() if p.name != "self"]

    expected = params(api.Register.__call__)
    assert all(kind is inspect.Parameter.KEYWORD_ONLY for _, kind, _ in expected)
    assert [n for n, _, _ in expected] == ["category", "name", "description", "columns", "factory", "container_key"]
    assert params(_Registrar.__call__) == expected
    assert "Register" in api.__all__
