"""The same numbers on both paths for trace bind (docs/config.md, "Where a metric is computed"):
configs drawn over bind's kernel columns, run by two `ig prometheus` side by side over the same real
binds (bind_workload.py: TCP, UDP and UDP-Lite over IPv4 and IPv6, succeeding and failing, in a
network namespace of the test's own), one counting in BPF maps (the default) and one with
--no-kernel-aggregation; every sample of every drawn metric must be identical.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.kernel_paths import EQUAL, EXAMPLES, ORDERED, Gadget, both_paths_agree

NAMES = ("ba", "bbb", "c" * 15)
# "6" is TCP's number: a row shows TCP, so it never matches
SELECTORS = {
    "comm": (EQUAL, (*NAMES, "c" * 16, "python3")),
    "proto": (EQUAL, ("TCP", "UDP", "UDPLITE", "SCTP", "UNKNOWN", "6", "99")),
    "if": (EQUAL, ("lo", "eth0")),
    "uid": (ORDERED, (-1, 0, 999, 1000, 65534, 70000)),
    "retval": (ORDERED, (-99, -98, -22, -13, 0, 1)),
    "port": (ORDERED, (0, 80, 1024, 20005, 65536)),
    "pid": (ORDERED, (0, 1, 4194305)),
}

BIND = Gadget("bind", SELECTORS, labels=("comm", "uid", "gid", "retval", "proto", "port", "if"),
              fields=("uid", "retval", "port", "pid", "tid", "gid"),
              workload=str(Path(__file__).with_name("bind_workload.py")), names=NAMES,
              counted=("comm", "proto", "retval", "uid"))


@EXAMPLES
@given(data=st.data())
def test_kernel_and_user_paths_expose_identical_samples(require_bpf, run_ig, make_netns, data):
    both_paths_agree(BIND, run_ig, make_netns(), data)
