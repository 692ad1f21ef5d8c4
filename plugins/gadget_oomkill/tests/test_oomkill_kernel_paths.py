"""The same numbers on both paths for trace oomkill (docs/config.md, "Where a metric is computed"):
configs drawn over oomkill's kernel columns, two `ig prometheus` side by side over the same real OOM
kills in a container with a small memory limit (a victim that triggered its own kill, and a victim
killed by another process's allocation, as several users), every sample identical.

Every process of the workload runs busybox through a link whose name is unique to the run, so its
command (victim and trigger alike) is the run's marker, which every drawn metric selects.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fixtures.igrun import check
from tests.fixtures.kernel_paths import Grammar, assert_same_samples, drawn_config, start_both

LIMIT = "48m"
USERS = ("0", "1000", "65534")

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _grammar(marker: str, container: str) -> Grammar:
    return Grammar(
        gadget="oomkill",
        anchor=f"kcomm:{marker}",
        ints={"kpid": (1, 4194305), "kuid": (-1, 0, 1000, 65534), "pages": (0, 1000, 7680, 8192, 40000),
              "tpid": (0, 1, 4194305)},
        strings={"kcomm": (marker, "dd"), "tcomm": (marker, "sh", '""'), "k8s.container": (container, "other")},
        labels=("kpid", "kcomm", "kuid", "pages", "tpid", "tcomm"),
        fields=("kpid", "kuid", "pages", "tpid"),
    )


def _kills(docker, container: str, link: str, user: str, grower: bool) -> int:
    """One workload run as `user` in the container; returns the OOM kills it causes."""
    if grower:
        # dd holds 30 MB and blocks on a pipe; once its first byte arrives, a shell doubles a string
        # until the limit: the OOM killer, run by the shell's allocation, picks dd, then the shell.
        script = (f"{link} dd if=/dev/zero bs=30M count=2 | "
                  "{ read -n 1 c; x=0123456789abcdef; while :; do x=$x$x; done; }")
        result = docker.cli("exec", "-u", user, container, link, "sh", "-c", script, check=False)
        assert result.returncode == 137, result
        return 2
    result = docker.cli("exec", "-u", user, container, link, "dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1",
                        check=False)
    assert result.returncode == 137, result
    return 1


@settings(max_examples=2, deadline=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_kernel_and_user_paths_expose_identical_samples(require_bpf, run_ig, docker, busybox_image, data):
    run = uuid.uuid4().hex
    marker, container = "busybox" + run[:8], f"ig-kpk-{run[8:18]}"   # busybox runs a link named busybox*
    docker.run("-d", "--network", "none", "--memory", LIMIT, "--memory-swap", LIMIT, busybox_image, "sleep", "600",
               name=container, detach=True)
    link = f"/tmp/{marker}"
    docker.cli("exec", container, "ln", "-s", "/bin/busybox", link)
    config = drawn_config(data.draw, _grammar(marker, container), 12, ("kuid", "tcomm", "k8s.container"))
    kernel, user = start_both(run_ig, config)

    expected: dict[str, int] = {}
    for uid, grower in data.draw(st.lists(st.tuples(st.sampled_from(USERS), st.booleans()), min_size=1, max_size=3)):
        expected[uid] = expected.get(uid, 0) + _kills(docker, container, link, uid, grower)
    for uid, count in expected.items():   # every kill seen in user space; then both agree
        assert user.wait_for("m_fixed_total", count, kuid=uid, k8s_container=container) == count, user.text()
    samples = assert_same_samples(kernel, user)
    assert sum(v for (name, _), v in samples.items() if name == "m_fixed_total") == sum(expected.values())
    kernel.stop()
    user.stop()
    docker.rm(container)


def test_check_places_the_example_in_the_kernel():
    """docs/config.md, "What trace oomkill sees"."""
    result = check(f"@{EXAMPLES}/oom_kills.yaml")
    assert result.returncode == 0, result.stderr
    assert "  oom_kills: in the kernel (a BPF map of trace oomkill)" in result.stdout.splitlines()
