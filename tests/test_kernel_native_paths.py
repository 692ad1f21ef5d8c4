"""Native histograms computed in the kernel (docs/config.md and docs/architecture.md,
"Native histograms in the kernel"): drawn schemas and multipliers over trace signal's signed 32-bit
fields, real failed kill(2) calls whose target pid and signal number the test draws over their
whole range, and the kernel path's histograms equal to a reference computed from Prometheus'
definition of the bucket index, bucket by bucket (the text formats' classic buckets of each series'
NativeCounts), with the same count as the user path (--no-kernel-aggregation) beside it.

Every call fails with ESRCH, and so signals nobody: a target above any pid_max (or the group of
one) does not exist, which the kernel finds before it looks at the signal number.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.utils import floatToGoString

from igcore.nativehist import DEFAULT_CLASSIC_MAX, classic_buckets, upper_bound
from tests.fixtures.igrun import check
from tests.fixtures.kernel_paths import EXAMPLES, start_both
from tests.fixtures.native_reference import reference_counts, reference_index
from tests.fixtures.protobuf_scrape import native_histograms

PID_MAX = 1 << 22   # the largest pid_max a kernel allows
S32 = (-(1 << 31), (1 << 31) - 1)
MULTIPLIERS = ("1", "1000", "0.001", "0.37", "1e-9", "7")
ESRCH = -3
SENDER = r"""
import json, os, sys
with open("/proc/self/comm", "w") as f:
    f.write(sys.argv[1])
for pid, number in json.loads(sys.argv[2]):
    try:
        os.kill(pid, number)
    except OSError:
        pass
"""

missing_pid = st.one_of(st.integers(PID_MAX + 1, S32[1]), st.integers(S32[0], -PID_MAX - 1),
                        st.sampled_from([S32[0], S32[1], PID_MAX + 1, -PID_MAX - 1]))
signal_number = st.one_of(st.integers(1, 64), st.integers(S32[0], -1), st.integers(65, S32[1]),
                          st.sampled_from([S32[0], S32[1], 65, -1, 1 << 20, (1 << 20) + 1]))


@st.composite
def near_a_bound(draw, schema: int, multiplier: str, low: int, high: int) -> int:
    """A raw of magnitude in [low, high] at most two from where a bucket of `schema` ends (a search
    off by one shows there): the bound of the bucket of a drawn magnitude, divided by the multiplier."""
    m = float(multiplier)
    magnitude = 2 ** draw(st.floats(math.log2(low), math.log2(high)))
    index = reference_index(magnitude * m, schema)
    raw = math.floor(upper_bound(index, schema) / m) + draw(st.integers(-2, 2)) if index is not None else low
    return min(max(raw, low), high) * draw(st.sampled_from([1, -1]))


@st.composite
def native(draw, name: str, comm: str, field: str) -> tuple[str, int, str]:
    schema, multiplier = draw(st.integers(0, 8)), draw(st.sampled_from(MULTIPLIERS))
    entry = (f"  - {{name: {name}, type: histogram, category: trace, gadget: signal, "
             f"selector: [\"comm:{comm}\", \"retval:<0\"], labels: [retval], field: {field}, "
             f"bucket: {{type: native, schema: {schema}, multiplier: {multiplier}}}}}")
    return entry, schema, multiplier


def _expected(name: str, raws: dict[int, list[int]], schema: int, multiplier: str) -> dict:
    """The samples of histogram `name`: per retval, its reference counts as classic buckets."""
    samples = {}
    for retval, observed in raws.items():
        counts = reference_counts(observed, schema, multiplier)
        labels = {"retval": str(retval)}
        rows = classic_buckets(counts, schema, DEFAULT_CLASSIC_MAX)
        for bound, cumulative in rows:
            samples[(f"{name}_bucket", frozenset({**labels, "le": floatToGoString(bound)}.items()))] = cumulative
        if rows[0][0] >= 0:   # prometheus_client shows no _count and _sum for a histogram with negative buckets
            samples[(f"{name}_count", frozenset(labels.items()))] = counts.count
            samples[(f"{name}_sum", frozenset(labels.items()))] = counts.sum
    return samples


def _of(samples: dict, names: tuple[str, ...]) -> dict:
    return {key: value for key, value in samples.items() if key[0].rpartition("_")[0] in names}


@given(data=st.data())
@EXAMPLES
def test_the_kernel_places_every_value_as_prometheus_defines(require_bpf, run_ig, data):
    comm = "n" + uuid.uuid4().hex[:14]
    target, number = data.draw(native("by_target", comm, "tpid")), data.draw(native("by_signal", comm, "signalRaw"))
    counted = (f"  - {{name: calls, type: counter, category: trace, gadget: signal, "
               f"selector: [\"comm:{comm}\", \"retval:<0\"], labels: [retval]}}")
    config = "metrics_name: native\nmetrics:\n" + "\n".join([target[0], number[0], counted]) + "\n"
    kernel, user = start_both(run_ig, config, "--host")

    pids = st.one_of(missing_pid, near_a_bound(*target[1:], PID_MAX + 1, S32[1]))
    numbers = st.one_of(signal_number, near_a_bound(*number[1:], 1, S32[1]))
    calls = data.draw(st.lists(st.tuples(pids, numbers), min_size=1, max_size=60))
    subprocess.run([sys.executable, "-c", SENDER, comm, json.dumps(calls)], check=True, timeout=60)
    by_retval = {ESRCH: calls}
    for ig in (kernel, user):
        assert ig.wait_for("calls_total", len(calls), retval=str(ESRCH)) == len(calls), ig.text()

    expected = {**_expected("by_target", {r: [p for p, _ in made] for r, made in by_retval.items()}, *target[1:]),
                **_expected("by_signal", {r: [s for _, s in made] for r, made in by_retval.items()}, *number[1:])}
    names = ("by_target", "by_signal")
    left, right = _of(kernel.samples(), names), _of(user.samples(), names)
    assert left == expected, {k: (left.get(k), expected.get(k)) for k in set(left) | set(expected)
                              if left.get(k) != expected.get(k)}
    assert right == left   # the user path's text rows
    # at full resolution (the text formats may show coarser buckets): both paths' protobuf against the reference
    natives = {}
    for name, column, (schema, multiplier) in (("by_target", 0, target[1:]), ("by_signal", 1, number[1:])):
        for retval, made in by_retval.items():
            raws = [call[column] for call in made]
            natives[(name, frozenset({"retval": str(retval)}.items()))] = (schema,
                                                                           reference_counts(raws, schema, multiplier))
    assert native_histograms(kernel, names) == natives
    assert native_histograms(user, names) == natives
    dropped = {dict(labels)["metric"]: value for (name, labels), value in kernel.samples().items()
               if name == "ig_series_dropped_total" and value}
    assert not dropped, dropped
    kernel.stop()
    user.stop()


def test_check_names_native_histograms_of_kernel_fields_in_the_kernel():
    """docs/config.md, "Native histograms in the kernel": a kernel column's native histogram goes to
    the kernel, a user-space column's stays in user space with the same bounds."""
    config = ("metrics_name: t\nmetrics:\n"
              "  - {name: pids, type: histogram, category: trace, gadget: exec, field: pid, bucket: {type: native}}\n"
              "  - {name: ppids, type: histogram, category: trace, gadget: exec, field: ppid, "
              "bucket: {type: native, schema: 0}}\n")
    result = check(config)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  pids: in the kernel (a BPF map of trace exec; a native histogram, its buckets found there)" in lines
    assert ("  ppids: in user space (trace exec): field ppid: column ppid is not known in the gadget's eBPF program"
            in lines)
