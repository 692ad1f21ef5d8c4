"""The same numbers on both paths: configs drawn from the grammar the kernel evaluates, run by two
`ig prometheus` side by side over the same real execs, one counting in BPF maps (the default) and
one with --no-kernel-aggregation; every sample of every drawn metric must be identical (the helper
every gadget's two-path test shares: tests/fixtures/kernel_paths.py).

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
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.kernel_paths import EXAMPLES, Grammar, assert_same_samples, drawn_config, paths, start_both

NAMES = ("a", "bb", "ccc", "d" * 12)
USERS = (0, 1000, 65534)


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


def _grammar(gid: int, comms: list[str], container: str) -> Grammar:
    return Grammar(
        gadget="exec",
        anchor=f"gid:{gid}",
        ints={"uid": (-1, 0, 999, 1000, 65534, 70000), "retval": (-13, -2, 0, 1), "pid": (0, 1, 4194305),
              "gid": (gid,)},
        strings={"comm": (*comms, "setpriv", "sh", "true", "x" * 20), "k8s.container": (container,)},
        labels=("comm", "uid", "gid", "retval"),
        fields=("uid", "retval", "pid", "gid"),
    )


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


@EXAMPLES
@given(data=st.data())
def test_kernel_and_user_paths_expose_identical_samples(require_bpf, run_ig, docker, busybox_image, workload_dir, data):
    folder, prefix = workload_dir
    gid = (1 << 20) + secrets.randbelow((1 << 31) - (1 << 20))   # not `random`: hypothesis seeds it alike in every run
    container = f"ig-kpath-{uuid.uuid4().hex[:8]}"
    docker.run("-d", "--network", "none", busybox_image, "sleep", "600", name=container, detach=True)
    comms = [f"{prefix}{name}"[:15] for name in NAMES]
    config = drawn_config(data.draw, _grammar(gid, comms, container), 24, ("comm", "retval", "uid", "k8s.container"))
    kernel, user = start_both(run_ig, config, "--host")

    expected = _run_workload(folder, prefix, gid, docker, container, data.draw(st.integers(0, 1 << 30)))
    for (comm, retval, uid), count in expected.items():   # the host's part, counted exactly on both
        labels = {"comm": comm, "retval": str(retval), "uid": str(uid), "k8s_container": ""}
        assert kernel.wait_for("m_fixed_total", count, **labels) == count, (labels, kernel.text())
        assert user.wait_for("m_fixed_total", count, **labels) == count, labels
    # the final state: every event seen by both (the container's too); then they must agree
    samples = assert_same_samples(kernel, user)
    in_container = [v for (name, labels), v in samples.items()
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
    assert paths(kernel) == {"kernel"} and paths(user) == {"user"}
    setpriv = shutil.which("setpriv")
    for _ in range(3):
        subprocess.run([setpriv, f"--regid={gid}", "--clear-groups", str(program)], check=True)
    subprocess.run([setpriv, f"--regid={gid}", "--clear-groups", "/bin/true"], check=True)
    for ig in (kernel, user):
        assert ig.wait_for("eq_total", 3) == 3, ig.text()
        assert ig.wait_for("ne_total", 1) == 1, ig.text()
