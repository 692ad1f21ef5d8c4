"""`ig list-gadgets` and `ig trace oomkill` show the gadget, as installed with pip."""

from __future__ import annotations

from oom_container import run_oom

from tests.fixtures.ig_trace import list_gadgets


def test_list_gadgets_shows_oomkill_and_its_columns():
    assert "ig-gadget-oomkill" in next(line for line in list_gadgets().splitlines() if "│ oomkill " in line)
    columns = list_gadgets("trace", "oomkill")
    for name in ("kpid", "kcomm", "pages", "tpid", "tcomm", "k8s.container"):
        assert f"│ {name} " in columns, name


def test_ig_trace_oomkill_prints_the_victims_container(live_trace, docker):
    trace = live_trace("oomkill")
    killed: list[str] = []
    row = trace.until(lambda r: r["k8s.container"] in killed, lambda: killed.append(run_oom(docker)))
    assert (row["kcomm"], row["runtime.runtimeName"]) == ("dd", "docker")
