"""The same numbers on both paths for trace tcp (docs/config.md, "Where a metric is computed"):
configs drawn over tcp's kernel columns, run by two `ig prometheus` side by side over the same real
connects, accepts and closes (tcp_workload.py: IPv4, IPv6 and IPv4-mapped IPv6, blocking and not,
refused, closed by either end, in a network namespace of the test's own), one counting in BPF maps
(the default) and one with --no-kernel-aggregation; every sample of every drawn metric must be
identical.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.kernel_paths import EQUAL, EXAMPLES, ORDERED, Gadget, both_paths_agree

NAMES = ("ta", "tbb", "c" * 15)
# "1" is connect's number: a row shows connect, so it never matches
SELECTORS = {
    "comm": (EQUAL, (*NAMES, "c" * 16, "python3")),
    "operation": (EQUAL, ("connect", "accept", "close", "unknown", "1")),
    "uid": (ORDERED, (-1, 0, 1000, 65534, 70000)),
    "retval": (ORDERED, (-115, -111, 0, 3, 5)),
    "ip": (ORDERED, (4, 6)),
    "dport": (ORDERED, (0, 7003, 7008, 32768, 65536)),
    "sport": (ORDERED, (0, 7003, 7008, 32768, 65536)),
    "tid": (ORDERED, (0, 1, 4194305)),
}

TCP = Gadget("tcp", SELECTORS, labels=("comm", "uid", "operation", "ip", "retval", "dport", "sport"),
             fields=("uid", "retval", "dport", "sport", "ip", "pid", "tid"),
             workload=str(Path(__file__).with_name("tcp_workload.py")), names=NAMES,
             counted=("comm", "operation", "retval", "uid"))


@EXAMPLES
@given(data=st.data())
def test_kernel_and_user_paths_expose_identical_samples(require_bpf, run_ig, make_netns, data):
    both_paths_agree(TCP, run_ig, make_netns(), data)
