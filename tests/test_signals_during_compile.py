"""ig's stop and reload signals reach its main thread, whatever ig is doing: no other thread of ig
takes them, so a SIGHUP that arrives while a reload recompiles an eBPF program reloads ig instead of
ending it (SIGHUP's default action, exit 129)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path


HANDLED = {signal.SIGHUP, signal.SIGINT, signal.SIGTERM}


def exec_config(name: str) -> str:
    # a kernel-path counter: each different name compiles a new trace exec program on reload
    return (f"metrics_name: sig\nmetrics:\n  - name: {name}\n    type: counter\n    category: trace\n"
            "    gadget: exec\n    selector: ['comm:cat']\n")


def blocked_signals(pid: int, tid: int) -> set[int]:
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            mask = int(line.split()[1], 16)
            return {sig for sig in HANDLED if mask & (1 << (sig - 1))}
    raise AssertionError(f"no SigBlk in /proc/{pid}/task/{tid}/status")


def other_threads(pid: int) -> list[int]:
    return [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir() if int(t.name) != pid]


def test_every_thread_but_the_main_one_blocks_the_stop_and_reload_signals(require_bpf, run_ig):
    ig = run_ig(exec_config("execs_a"))
    threads = other_threads(ig.proc.pid)
    assert threads, "ig runs its gadgets and server in threads"
    unblocking = {tid: HANDLED - blocked_signals(ig.proc.pid, tid) for tid in threads}
    assert {tid: missing for tid, missing in unblocking.items() if missing} == {}


def test_sighup_during_a_recompiling_reload_is_one_more_reload(require_bpf, run_ig, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(exec_config("execs_a"))
    ig = run_ig(f"@{path}", "--host")
    path.write_text(exec_config("execs_b"))
    # The first SIGHUP starts a reload that compiles a new program (about half a second here);
    # the others arrive while it runs, and must only ask for one more reload.
    for _ in range(20):
        ig.proc.send_signal(signal.SIGHUP)
        time.sleep(0.05)  # spacing between signals, not a wait for a state
        assert ig.proc.poll() is None, f"ig exited with {ig.proc.returncode}:\n{ig.output()}"
    deadline = time.monotonic() + 60
    while ig.value("execs_b_total") is None:   # the new config counts: a cat is all it takes
        assert ig.proc.poll() is None, f"ig exited with {ig.proc.returncode}:\n{ig.output()}"
        assert time.monotonic() < deadline, ig.output()
        subprocess.run(["cat", "/dev/null"], check=True)
        time.sleep(0.1)
    assert ig.value("ig_config_reloads_total", result="failure") == 0
    assert ig.stop(signal.SIGTERM) == 0
    assert "Traceback" not in ig.output()
