"""trace oomkill on the real kernel: an OOM kill caused on purpose in a container is exactly one row, the victim's."""

from __future__ import annotations

import os

from oom_container import HOLDER_AND_GROWER, run_oom

from igcore.api import cgroup2_mount, id_of, pid_cgroup_path
from igcore.plugins import load_catalog


def test_schema_and_registration():
    spec = load_catalog().get("trace", "oomkill")
    assert spec is not None and spec.distribution == "ig-gadget-oomkill"
    assert spec.container_key == "cgroup_id"
    kinds = {c.name: c.kind.value for c in spec.columns}
    for name, kind in [("kpid", "int"), ("kcomm", "str"), ("kuid", "int"), ("pages", "int"), ("tpid", "int"),
                       ("tcomm", "str"), ("cgroup_id", "uint"), ("k8s.container", "str")]:
        assert kinds[name] == kind, name


def test_one_oom_kill_is_one_row_with_the_victims_cgroup(trace_rows, docker):
    trace = trace_rows("oomkill")
    run_oom(docker)
    # The row is emitted at the victim's exit, which is behind us once the container has exited;
    # stopping the gadget drains the ring buffer, so every row is here.
    trace.stop()
    rows = trace.matching(lambda r: r["kcomm"] == "dd")
    assert len(rows) == 1
    row = rows[0]
    assert row["tpid"] == row["kpid"] and row["tcomm"] == "dd"  # dd's own allocation ran the OOM killer
    assert row["kuid"] == 0 and row["pages"] > 0
    # The container's cgroup (the container columns come from it: see the end-to-end test), not ours.
    mine = id_of(cgroup2_mount(), pid_cgroup_path(os.getpid()))
    assert row["cgroup_id"] not in (0, 1, mine)
    assert trace.gadget.stats.events_lost == 0 and trace.gadget.stats.decode_errors == 0


def test_victim_and_trigger_apart(trace_rows, docker):
    """The OOM killer runs in the shell's context but kills dd: the row is dd's (pid, comm, cgroup),
    and names the shell as the trigger."""
    trace = trace_rows("oomkill")
    run_oom(docker, script=HOLDER_AND_GROWER, limit="48m")
    trace.stop()
    rows = sorted(trace.matching(lambda r: r["kcomm"] in ("dd", "sh")), key=lambda r: r["timestamp"])
    assert [(r["kcomm"], r["tcomm"]) for r in rows] == [("dd", "sh"), ("sh", "sh")]
    dd, sh = rows
    assert dd["tpid"] == sh["kpid"] == sh["tpid"] and dd["kpid"] != sh["kpid"]
    assert dd["cgroup_id"] == sh["cgroup_id"] and dd["pages"] >= 30 * 2**20 // os.sysconf("SC_PAGE_SIZE")
