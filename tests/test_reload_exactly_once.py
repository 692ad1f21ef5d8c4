"""Rapid reloads count every event once: a real `ig prometheus` and the real exec gadget take 50
SIGHUPs in 5 s, alternating two configs that each recompile the program, while a known number of
execs runs; the metrics both configs share end at exactly that number, in the kernel and in user
space (docs/config.md, "Reloads").

Both configs hold `in_kernel` (a `comm` selector the program evaluates) and `in_user` (a `~regex`
selector, kept in user space); `flip` moves between the kernel and user space, so every reload
compiles a new program and hands over from the old one. With `--no-kernel-aggregation` every metric
is in user space and the program is never compiled again: reloads only rebind the metrics."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

SIGHUPS = 50
STORM_SECONDS = 5.0


@pytest.fixture
def program():
    folder = Path(tempfile.mkdtemp(prefix="ig-reload-"))
    path = folder / ("igr" + uuid.uuid4().hex[:10])   # 13 characters: the whole name is the comm
    shutil.copy("/bin/true", path)
    yield path
    shutil.rmtree(folder)


def _config(comm: str, flip_in_kernel: bool) -> str:
    flip = f"comm:{comm}" if flip_in_kernel else f"comm:~^{comm}"

    def metric(name: str, selector: str) -> str:
        return f'  - {{name: {name}, type: counter, category: trace, gadget: exec, selector: ["{selector}"]}}\n'

    return ("metrics_name: reload\nmetrics:\n" + metric("in_kernel", f"comm:{comm}")
            + metric("in_user", f"comm:~^{comm}$") + metric("flip", flip))


def _replace(path: Path, text: str) -> None:
    """As an editor saves: a reload never reads a half-written file."""
    temporary = path.with_suffix(".new")
    temporary.write_text(text)
    temporary.rename(path)


def _start_workload(program: Path, stop: Path) -> subprocess.Popen:
    """Execs `program` as fast as one shell can until `stop` exists; prints how many it ran."""
    loop = f'i=0; while [ ! -e "{stop}" ]; do "{program}"; i=$((i+1)); done; echo $i'
    return subprocess.Popen(["/bin/sh", "-c", loop], stdout=subprocess.PIPE, text=True)


def _reloads(ig) -> float:
    return ig.value("ig_config_reloads_total", result="success") or 0


def _wait_for_last_reload(ig, text: str, timeout: float = 120) -> None:
    """Until the config in force is `text` and no reload happened across a settle barrier."""
    sha = hashlib.sha256(text.encode()).hexdigest()
    deadline = time.monotonic() + timeout
    while True:
        before = _reloads(ig)
        if ig.value("ig_config_info", sha256=sha) == 1:
            ig.settle()
            if _reloads(ig) == before:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"ig did not settle on the last config within {timeout}s:\n{ig.output()[-3000:]}")
        time.sleep(0.05)


@pytest.mark.parametrize("args, kernel_path", [((), "kernel"), (("--no-kernel-aggregation",), "user")],
                         ids=["kernel-aggregation", "no-kernel-aggregation"])
def test_rapid_reloads_count_every_exec_once_on_both_paths(require_bpf, run_ig, program, tmp_path, args, kernel_path):
    comm = program.name
    configs = [_config(comm, True), _config(comm, False)]
    path = tmp_path / "config.yaml"
    path.write_text(configs[0])
    ig = run_ig(f"@{path}", "--host", *args)
    assert ig.value("ig_metric_aggregation", metric="in_kernel", path=kernel_path) == 1
    assert ig.value("ig_metric_aggregation", metric="in_user", path="user") == 1

    stop = tmp_path / "stop"
    workload = _start_workload(program, stop)
    try:
        started = time.monotonic()
        for i in range(1, SIGHUPS + 1):
            _replace(path, configs[i % 2])
            ig.proc.send_signal(signal.SIGHUP)
            # paces the storm (50 in 5 s), it waits for nothing
            time.sleep(max(0.0, started + i * STORM_SECONDS / SIGHUPS - time.monotonic()))
    finally:
        stop.touch()
        out, _ = workload.communicate(timeout=60)
    execs = int(out.strip())
    assert execs > 200

    _wait_for_last_reload(ig, configs[SIGHUPS % 2])
    assert _reloads(ig) >= 2, "the storm must have swapped configs"
    in_kernel = ig.wait_for("in_kernel_total", execs)
    in_user = ig.wait_for("in_user_total", execs)
    lost = ig.samples()
    assert sum(v for (n, _), v in lost.items() if n == "ig_events_lost_total") == 0
    assert (in_kernel, in_user) == (execs, execs), ig.output()[-3000:]
    assert ig.stop(signal.SIGTERM) == 0
    assert "Traceback" not in ig.output()
