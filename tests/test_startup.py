"""Start-up (docs/config.md, "Start-up and memory"): the gadgets of a config start side by side,
each gadget compiles once whatever the number of its metrics, and the compiler's memory is given back.

Concurrency is shown by conditions, never by timing: starts that meet at a threading.Barrier can
only succeed if they run at the same time (one after another, the first would time out alone).
The figures (time to first scrape, RSS) are bench/startup's.
"""

from __future__ import annotations

import os
import threading
from importlib import resources
from pathlib import Path


from igcore.bpf import Compiler, private_kallsyms
from igcore.bpf.memory import clean_compiler_mappings
from igcore.gadgets import GadgetContext
from igcore.isolation import GadgetThreads
from igcore.startup import start_all
from tests.fixtures.igrun import log_lines
from tests.fixtures.misbehaving import SNAPSHOT, TRACE

BARRIER_SECONDS = 20


class BlockingRun:
    """A gadget run whose start() returns only once `barrier` has all its parties."""

    def __init__(self, label: str, barrier: threading.Barrier) -> None:
        self.label, self.barrier = label, barrier
        self.outcome: str | None = None

    def start(self) -> None:
        try:
            self.barrier.wait()
            self.outcome = "started"
        except threading.BrokenBarrierError:
            self.outcome = "alone"


def test_start_all_runs_every_start_at_once_and_returns_when_all_have():
    barrier = threading.Barrier(3, timeout=BARRIER_SECONDS)
    runs = [BlockingRun(f"trace g{i}", barrier) for i in range(3)]
    start_all(runs, Compiler())
    assert [r.outcome for r in runs] == ["started"] * 3  # set before start_all returned


def _reader() -> None:
    threading.Event().wait(0.5)  # a gadget's thread, alive while the test looks


def test_each_gadget_keeps_only_the_threads_it_spawned():
    """Two starts at once, each spawning a thread through its own context while the other's start
    runs too: each gadget's threads are its own, whatever else starts threads meanwhile."""
    barrier = threading.Barrier(2, timeout=BARRIER_SECONDS)
    contexts = {name: GadgetContext(threads=GadgetThreads(f"trace {name}")) for name in ("a", "b")}
    threads: dict[str, threading.Thread] = {}

    def start(name: str) -> None:
        threads[name] = contexts[name].spawn(_reader, name=f"reader-{name}")
        barrier.wait()  # both gadgets have started their thread and are still inside start()

    runners = [threading.Thread(target=start, args=(n,)) for n in contexts]
    for t in runners:
        t.start()
    for t in runners:
        t.join()
    assert contexts["a"].threads.threads == [threads["a"]]
    assert contexts["b"].threads.threads == [threads["b"]]


def test_gadgets_whose_start_blocks_start_together_in_ig(run_ig, synth, bad):
    """The misbehaving trace and snapshot gadgets each wait in their start for the other: ig serves
    both running only if it started them at the same time."""
    bad.env("IG_MISBEHAVING_START_BARRIER", "2")
    bad.env("IG_MISBEHAVING_BARRIER_TIMEOUT", str(BARRIER_SECONDS))
    config = """
metrics_name: together
metrics:
  - {name: bad_events, type: counter, category: trace, gadget: misbehaving, labels: [uid]}
  - {name: bad_sizes, type: gauge, category: snapshot, gadget: misbehaving, field: size}
  - {name: good_events, type: counter, category: trace, gadget: synth, labels: [comm]}
"""
    ig = run_ig(config, "--host")
    assert ig.value("ig_gadget_running", **TRACE) == 1
    assert ig.value("ig_gadget_running", **SNAPSHOT) == 1
    assert ig.value("ig_gadget_running", category="trace", gadget="synth") == 1
    assert log_lines(ig, "failed to start") == []
    bad.send([{"comm": "x", "pid": 1, "uid": 7, "ratio": 1.0, "cgroup_id": 0}])
    assert ig.wait_for("bad_events_total", 1, uid="7") == 1  # its reader thread runs and delivers


def bpf_prog_fds(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd) == "anon_inode:bpf-prog"
        except OSError:
            pass
    return count


def test_one_compile_per_gadget_whatever_the_number_of_metrics(require_bpf, run_ig):
    def config(n: int) -> str:
        metrics = "".join(f"  - {{name: execs_{i}, type: counter, category: trace, gadget: exec, labels: [comm]}}\n"
                          for i in range(n))
        return f"metrics_name: compile_once\nmetrics:\n{metrics}"

    one = run_ig(config(1))
    many = run_ig(config(30))
    assert bpf_prog_fds(one.proc.pid) > 0
    assert bpf_prog_fds(many.proc.pid) == bpf_prog_fds(one.proc.pid)


LLVM, LIBC, CLANG = ("/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                     "/usr/lib/llvm-14/lib/libclang-cpp.so.14")
# (start, end, permissions, path, Rss kB, Anonymous kB) of each mapping, written out as smaps has it
MAPPINGS = [
    (0x7f0000000000, 0x7f0000100000, "r--p", LLVM, 800, 0),
    (0x7f0000100000, 0x7f0000200000, "r-xp", LLVM, 1000, 0),
    (0x7f0000200000, 0x7f0000300000, "r--p", LLVM, 900, 900),   # relocated: its pages were written
    (0x7f0000300000, 0x7f0000310000, "rw-p", LLVM, 64, 0),
    (0x7f0000400000, 0x7f0000500000, "r-xp", LIBC, 500, 0),
    (0x7f0000500000, 0x7f0000600000, "r-xp", CLANG, 300, 0),
    (0x7f0000600000, 0x7f0000700000, "rw-p", "", 100, 100),
]
SMAPS = "".join(f"{start:x}-{end:x} {perms} 00000000 08:01 123 {path}\nRss: {rss} kB\nAnonymous: {anon} kB\n"
                for start, end, perms, path, rss, anon in MAPPINGS)


def test_only_clean_read_only_compiler_pages_are_dropped():
    """Relocated (written, so anonymous) pages and writable mappings keep their contents; other
    libraries are left alone."""
    assert clean_compiler_mappings(SMAPS) == [(0x7f0000000000, 0x7f0000100000), (0x7f0000100000, 0x7f0000200000),
                                              (0x7f0000500000, 0x7f0000600000)]


def _compiler_rss_kb() -> int:
    """Rss of the compiler libraries' mappings that clean_compiler_mappings would drop."""
    text = Path("/proc/self/smaps").read_text()
    clean = set(clean_compiler_mappings(text))
    total, current = 0, False
    for line in text.splitlines():
        if "-" in line.split(" ", 1)[0] and len(line.split()) >= 5:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            current = (start, end) in clean
        elif current and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_a_real_compile_gives_back_the_compilers_pages_and_compiles_again(require_bpf):
    compiler = Compiler()
    text = resources.files("igcore.containers").joinpath("cgroup_watch.bpf.c").read_text()
    first = compiler.compile(text, name="cgroup_watch")
    try:
        assert _compiler_rss_kb() > 0  # the compile mapped the compiler in
        compiler.release_memory()
        assert _compiler_rss_kb() == 0
        second = compiler.compile(text, name="cgroup_watch")  # a reload compiles again from dropped pages
        second.cleanup()
    finally:
        first.cleanup()


def test_bcc_compiles_on_a_thread_whose_kallsyms_and_cwd_are_its_own(require_bpf):
    """The short /proc/kallsyms is mounted for the compiler thread only: the host's mount table,
    ig's other threads' view and their working directory stay as they were."""
    compiler = Compiler()
    text = resources.files("igcore.containers").joinpath("cgroup_watch.bpf.c").read_text()
    cwd = os.getcwd()
    cwds: set[str] = set()
    compiling = threading.Thread(target=lambda: compiler.compile(text, name="cgroup_watch").cleanup())
    compiling.start()
    while compiling.is_alive():  # bcc chdirs to the kernel headers while it compiles: not here
        cwds.add(os.getcwd())
    compiling.join()
    assert cwds <= {cwd}
    tid = compiler._thread.native_id
    kallsyms_mounts = [line for line in Path(f"/proc/self/task/{tid}/mountinfo").read_text().splitlines()
                       if line.split()[4] == "/proc/kallsyms"]
    assert len(kallsyms_mounts) == 1
    for other in ("/proc/thread-self/mountinfo", "/proc/1/mountinfo"):
        assert all(line.split()[4] != "/proc/kallsyms" for line in Path(other).read_text().splitlines())
    # /proc/<tid>/root walks that thread's mounts: it sees the two symbols bcc asks about, we see all
    short = Path(f"/proc/self/task/{tid}/root/proc/kallsyms").read_text().split()
    assert sorted(short[2::3]) == sorted(private_kallsyms.SYMBOLS_ASKED)
    with open("/proc/kallsyms") as f:   # the lines grep found are the kernel's own, whole
        assert sorted(Path(f"/proc/self/task/{tid}/root/proc/kallsyms").read_text().splitlines(keepends=True)) == \
            sorted(line for line in f if line.split(None, 3)[2].rstrip() in private_kallsyms.SYMBOLS_ASKED)
    assert sum(1 for _ in open("/proc/kallsyms")) > 1000


def test_a_program_compiled_early_is_taken_by_the_next_compile_of_it(require_bpf):
    compiler = Compiler()
    text = resources.files("igcore.containers").joinpath("cgroup_watch.bpf.c").read_text()
    compiler.compile_early(text, name="cgroup watch")
    background = compiler._early[(text, ())]
    early = compiler.compile(text, name="cgroup watch")  # waits for the early one
    again = compiler.compile(text, name="cgroup watch")  # taken once: this one compiles
    try:
        assert early is background.result() and again is not early
    finally:
        early.cleanup()
        again.cleanup()
