"""The same numbers on both paths for trace signal (docs/config.md, "Where a metric is computed"):
configs drawn over signal's kernel columns, two `ig prometheus` side by side over the same real
signals (several numbers, to a live target that blocks them, so that some stay pending, to the
sender itself, and to a process that does not exist, as root and as users the target refuses),
every sample identical.

The sender and the target name themselves with commands unique to the run; every drawn metric
selects the sender's.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fixtures.igrun import check
from tests.fixtures.kernel_paths import Grammar, assert_same_samples, drawn_config, start_both
from tests.fixtures.waiting import wait_until

USERS = (0, 1000, 65534)
MISSING = 5_000_000   # above any pid_max (at most 2^22): kill() fails with ESRCH
SIGNALS = (signal.SIGUSR1, signal.SIGUSR1, signal.SIGUSR2, signal.SIGRTMIN + 3, signal.SIGRTMIN + 3, signal.SIGHUP,
           signal.SIGTERM, signal.SIGWINCH)
# The target blocks every signal it can, so that what it is sent stays pending and it stays alive.
TARGET = r"""
import signal, sys, time
with open("/proc/self/comm", "w") as f:
    f.write(sys.argv[1])
signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})
print("ready", flush=True)
time.sleep(600)
"""
# The sender: each `kill` given, then SIGWINCH to itself (ignored), by tgkill.
SENDER = r"""
import os, signal, sys, threading
with open("/proc/self/comm", "w") as f:
    f.write(sys.argv[1])
for spec in sys.argv[2:]:
    pid, number = map(int, spec.split(":"))
    try:
        os.kill(pid, number)
    except OSError:
        pass
signal.pthread_kill(threading.get_ident(), signal.SIGWINCH)
"""

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _grammar(comm: str, tcomm: str, target: int) -> Grammar:
    numbers = (int(signal.SIGUSR1), int(signal.SIGRTMIN) + 3, int(signal.SIGCHLD), int(signal.SIGWINCH))
    return Grammar(
        gadget="signal",
        anchor=f"comm:{comm}",
        ints={"uid": (-1, 0, 1000, 65534), "gid": (0, 1000), "pid": (1, 4194305), "tid": (1, 4194305),
              "tpid": (0, target, MISSING), "signalRaw": (0, *numbers, 65), "retval": (-3, -1, 0)},
        strings={"comm": (comm, "sh"), "tcomm": (tcomm, comm, '""'),
                 "signal": ("SIGUSR1", "SIGRTMIN+3", "SIGCHLD", "SIGWINCH", "SIGKILL", "0", "65"),
                 "result": ("delivered", "ignored", "already_pending", '""')},
        labels=("uid", "gid", "comm", "tpid", "tcomm", "signal", "signalRaw", "result", "retval"),
        fields=("uid", "tpid", "signalRaw", "retval"),
    )


def _send_as(uid: int, comm: str, target: int, order: list[int]) -> dict[tuple[str, str], int]:
    """Sends SIGNALS (in `order`) to the target and one to MISSING as `uid`; returns the calls per
    (signal, retval) as rows show them."""
    specs = [f"{target}:{int(SIGNALS[i])}" for i in order] + [f"{MISSING}:{int(signal.SIGUSR1)}"]
    setpriv = shutil.which("setpriv")
    subprocess.run([setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c", SENDER, comm,
                    *specs], check=True)
    expected: dict[tuple[str, str], int] = {}
    for spec in specs:
        pid, number = map(int, spec.split(":"))
        retval = -3 if pid == MISSING else -1 if uid else 0
        key = (_name(number), str(retval))
        expected[key] = expected.get(key, 0) + 1
    key = ("SIGWINCH", "0")
    expected[key] = expected.get(key, 0) + 1
    return expected


def _name(number: int) -> str:
    if signal.SIGRTMIN < number < signal.SIGRTMAX:
        return f"SIGRTMIN+{number - signal.SIGRTMIN}"
    return signal.Signals(number).name


@settings(max_examples=2, deadline=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_kernel_and_user_paths_expose_identical_samples(require_bpf, run_ig, data):
    run = uuid.uuid4().hex
    comm, tcomm = "s" + run[:14], "t" + run[14:28]
    target = subprocess.Popen([sys.executable, "-c", TARGET, tcomm], stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout is not None and target.stdout.readline() == "ready\n"
        config = drawn_config(data.draw, _grammar(comm, tcomm, target.pid), 16, ("signal", "retval"))
        kernel, user = start_both(run_ig, config, "--host")

        expected: dict[tuple[str, str], int] = {}
        for uid in data.draw(st.lists(st.sampled_from(USERS), min_size=1, max_size=3)):
            order = data.draw(st.permutations(range(len(SIGNALS))))
            for key, count in _send_as(uid, comm, target.pid, order).items():
                expected[key] = expected.get(key, 0) + count
        for (name, retval), count in expected.items():   # every call seen in user space; then both agree
            assert user.wait_for("m_fixed_total", count, signal=name, retval=retval) == count, (name, user.text())
        assert_same_samples(kernel, user)
        kernel.stop()
        user.stop()
    finally:
        target.kill()
        target.wait()
    wait_until(lambda: target.poll() is not None, "the target to exit")


def test_check_places_named_signals_in_the_kernel_and_a_regex_in_user_space():
    """docs/config.md, "Using trace signal": both metrics of examples/signals.yaml."""
    result = check(f"@{EXAMPLES}/signals.yaml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  killed_processes: in the kernel (a BPF map of trace signal)" in lines
    assert ('  crashes: in user space (trace signal): selector "signal:~^SIG(SEGV|BUS|ILL|FPE|ABRT)$": regular '
            "expressions are evaluated in user space") in lines
