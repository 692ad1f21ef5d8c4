"""The same numbers on both paths: configs drawn from the grammar the kernel evaluates, run by two
`ig prometheus` side by side over the same real execs, one counting in BPF maps (the default) and
one with --no-kernel-aggregation; every sample of every drawn metric must be identical.

The workload runs under a group id of its own (every drawn metric selects it, so the machine's other
execs, which both instances also see, stay out), with varied names, users, successes and failures,
on the host and inside a container.
"""

from __future__ import annotations

import random
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

NAMES = ("a", "bb", "ccc", "d" * 12)
USERS = (0, 1000, 65534)
KERNEL_COLUMNS = ("comm", "uid", "gid", "retval")
CONTAINER_LABELS = ("k8s.container", "runtime.containerName")


@pytest.fixture(scope="module")
def workload_dir():
    folder = Path(tempfile.mkdtemp(prefix="ig-kpath-"))
    folder.chmod(0o755)
    prefix = "k" + uuid.uuid4().hex[:2]
    for name in NAMES:
        shutil.copy("/bin/true", folder / f"{prefix}{name}")
        (folder / f"{prefix}{name}").chmod(0o755)
    (folder / "noexec").write_text("not a program\n")
    yield folder, prefix
    shutil.rmtree(folder)


def _selector(draw, comms: list[str], gid: int, container: str) -> str:
    kind = draw(st.sampled_from(["comm", "!comm", "uid", "retval", "pid", "gid", "container", "!container"]))
    op = draw(st.sampled_from(["", "!", ">", ">=", "<", "<="]))
    if kind == "comm":
        return f"comm:{draw(st.sampled_from(comms + ['setpriv', 'sh', 'true', 'x' * 20]))}"
    if kind == "!comm":
        return f"comm:!{draw(st.sampled_from(comms))}"
    if kind == "uid":
        return f"uid:{op}{draw(st.sampled_from([-1, 0, 999, 1000, 65534, 70000]))}"
    if kind == "retval":
        return f"retval:{op}{draw(st.sampled_from([-13, -2, 0, 1]))}"
    if kind == "pid":
        return f"pid:{draw(st.sampled_from(['>1', '>=0', '!1', '<4194305']))}"
    if kind == "gid":
        return f"gid:{draw(st.sampled_from(['>=', '<=', '']))}{gid}"
    return f"k8s.container:{'!' if kind == '!container' else ''}{container}"


@st.composite
def metric(draw, index: int, comms: list[str], gid: int, container: str) -> str:
    kind = draw(st.sampled_from(["count", "sum", "histogram"]))
    selectors = [f"gid:{gid}", *(_selector(draw, comms, gid, container) for _ in range(draw(st.integers(0, 2))))]
    labels = draw(st.lists(st.sampled_from(KERNEL_COLUMNS + CONTAINER_LABELS), unique=True, max_size=3))
    lines = [f"  - name: m{index}", "    category: trace", "    gadget: exec",
             f"    selector: [{', '.join(repr(s) for s in selectors)}]", f"    labels: [{', '.join(labels)}]"]
    if kind == "histogram":
        low = draw(st.integers(0, 3))
        multiplier = draw(st.sampled_from(["1", "3", "0.5", "2.5", "100"]))
        lines += ["    type: histogram", f"    field: {draw(st.sampled_from(['uid', 'retval', 'pid', 'gid']))}",
                  f"    bucket: {{type: {draw(st.sampled_from(['exp2', 'linear']))}, min: {low}, "
                  f"max: {low + draw(st.integers(1, 12))}, multiplier: {multiplier}}}"]
    else:
        lines.append("    type: counter")
        if kind == "sum":
            lines.append(f"    field: {draw(st.sampled_from(['uid', 'gid', 'retval', 'pid']))}")
    return "\n".join(lines)


def _run_workload(folder: Path, prefix: str, gid: int, docker, container: str, seed: int) -> dict:
    """Real execs; returns how many of them each (comm, retval, uid) on the host had."""
    rng = random.Random(seed)
    setpriv = shutil.which("setpriv")
    expected: dict[tuple[str, int, int], int] = {}
    for _ in range(rng.randint(8, 16)):
        name, uid = rng.choice(NAMES), rng.choice(USERS)
        subprocess.run([setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", str(folder / f"{prefix}{name}")],
                       check=True)
        key = (f"{prefix}{name}"[:15], 0, uid)
        expected[key] = expected.get(key, 0) + 1
    for target, errno in ((folder / "missing", -2), (folder / "noexec", -13)):
        for _ in range(rng.randint(1, 3)):
            uid = rng.choice(USERS)
            subprocess.run([setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", str(target)],
                           stderr=subprocess.DEVNULL)
            expected[("setpriv", errno, uid)] = expected.get(("setpriv", errno, uid), 0) + 1
    user = rng.choice(USERS)
    docker.cli("exec", "-u", f"{user}:{gid}", container, "sh", "-c", "/bin/true; /bin/true; /nope; cat /dev/null",
               check=False)
    return expected


def _drawn_samples(ig) -> dict:
    return {key: value for key, value in ig.samples().items()
            if key[0].startswith("m_fixed") or (key[0].startswith("m") and key[0][1].isdigit())}


def _paths(ig) -> set[str]:
    return {dict(labels)["path"] for (name, labels), _ in ig.samples().items() if name == "ig_metric_aggregation"}


@settings(max_examples=2, deadline=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_kernel_and_user_paths_expose_identical_samples(require_bpf, run_ig, docker, busybox_image, workload_dir, data):
    folder, prefix = workload_dir
    gid = (1 << 20) + secrets.randbelow((1 << 31) - (1 << 20))   # not `random`: hypothesis seeds it alike in every run
    container = f"ig-kpath-{uuid.uuid4().hex[:8]}"
    docker.run("-d", "--network", "none", busybox_image, "sleep", "600", name=container, detach=True)
    comms = [f"{prefix}{name}"[:15] for name in NAMES]
    drawn = [data.draw(metric(i, comms, gid, container)) for i in range(24)]
    fixed = f"""  - name: m_fixed
    type: counter
    category: trace
    gadget: exec
    selector: ["gid:{gid}"]
    labels: [comm, retval, uid, k8s.container]"""
    config = "metrics_name: kpaths\nmetrics:\n" + "\n".join([*drawn, fixed]) + "\n"
    kernel = run_ig(config, "--host")
    user = run_ig(config, "--host", "--no-kernel-aggregation")
    assert _paths(kernel) == {"kernel"}, kernel.text()
    assert _paths(user) == {"user"}

    expected = _run_workload(folder, prefix, gid, docker, container, data.draw(st.integers(0, 1 << 30)))
    for (comm, retval, uid), count in expected.items():   # the host's part, counted exactly on both
        labels = {"comm": comm, "retval": str(retval), "uid": str(uid), "k8s_container": ""}
        assert kernel.wait_for("m_fixed_total", count, **labels) == count, (labels, kernel.text())
        assert user.wait_for("m_fixed_total", count, **labels) == count, labels
    # the final state: every event seen by both (the container's too); then they must agree
    deadline = time.monotonic() + 30
    while True:
        user.settle()
        left, right = _drawn_samples(kernel), _drawn_samples(user)
        if left == right or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == right, {k: (left.get(k), right.get(k)) for k in set(left) | set(right) if left.get(k) != right.get(k)}
    in_container = [v for (name, labels), v in left.items()
                    if name == "m_fixed_total" and dict(labels)["k8s_container"] == container]
    assert in_container, "no exec of the container was counted"
    kernel.stop()
    user.stop()
    docker.rm(container)


def test_a_quoted_literal_counts_the_same_on_both_paths(require_bpf, run_ig, tmp_path):
    """`comm:"=qz…"` selects a command whose name starts with "=" (docs/config.md, "Selectors"): the
    kernel's C and the user-space predicate compare the unquoted value, and its negation likewise."""
    tmp_path.chmod(0o755)
    name = "=q" + uuid.uuid4().hex[:6]
    program = tmp_path / name
    shutil.copy("/bin/true", program)
    gid = (1 << 20) + secrets.randbelow((1 << 31) - (1 << 20))   # not `random`: hypothesis seeds it alike in every run
    config = "metrics_name: literal\nmetrics:\n" + "".join(
        f"  - {{name: {metric}, type: counter, category: trace, gadget: exec, selector: ['gid:{gid}', '{rule}']}}\n"
        for metric, rule in (("eq", f'comm:"{name}"'), ("ne", f'comm:!"{name}"')))
    kernel = run_ig(config, "--host")
    user = run_ig(config, "--host", "--no-kernel-aggregation")
    assert _paths(kernel) == {"kernel"} and _paths(user) == {"user"}
    setpriv = shutil.which("setpriv")
    for _ in range(3):
        subprocess.run([setpriv, f"--regid={gid}", "--clear-groups", str(program)], check=True)
    subprocess.run([setpriv, f"--regid={gid}", "--clear-groups", "/bin/true"], check=True)
    for ig in (kernel, user):
        assert ig.wait_for("eq_total", 3) == 3, ig.text()
        assert ig.wait_for("ne_total", 1) == 1, ig.text()
