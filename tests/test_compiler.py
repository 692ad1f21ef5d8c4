"""ig's BPF compiler is one object (igcore.bpf.Compiler) that owns all of its state: two of them in
one process share no thread, queue or early program, the ring-buffer transport holds no compile
state, a dropped compiler ends its thread, `ig prometheus` compiles its gadgets and its cgroup watch
with the one compiler the executable built, and the compiler thread's short /proc/kallsyms never
reaches a symbol lookup made after a compile (docs/security.md, "The compiler's /proc/kallsyms")."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from importlib import resources
from queue import SimpleQueue

from igcore.bpf import compiler, transport
from tests.fixtures.requirements import require_bpf  # noqa: F401  (fixture)
from tests.fixtures.waiting import wait_until


def _watch_program() -> str:
    return resources.files("igcore.containers").joinpath("cgroup_watch.bpf.c").read_text()


def test_two_compilers_in_one_process_share_no_thread_and_no_early_program(require_bpf):
    first, second = compiler.Compiler(), compiler.Compiler()
    text = _watch_program()
    first.compile_early(text, name="cgroup watch")
    early = first._early[(text, ())]
    other = second.compile(text, name="cgroup watch")     # not the first's early program: compiles its own
    taken = first.compile(text, name="cgroup watch")      # the first's own early program
    try:
        assert taken is early.result() and other is not taken
        assert first._thread is not None and second._thread is not None and first._thread is not second._thread
        assert first._thread.is_alive() and second._thread.is_alive()
    finally:
        taken.cleanup()
        other.cleanup()


def test_no_module_of_the_bpf_package_holds_compile_state():
    """Only bcc's own process-wide front end is guarded at module level (compiler.BCC_FRONT_END)."""
    stateful = (dict, list, set, Future, SimpleQueue, threading.Thread, type(threading.Lock()))
    for module in (transport, compiler):
        found = {name for name, value in vars(module).items()
                 if isinstance(value, stateful) and not name.startswith("__") and name != "BCC_FRONT_END"}
        assert found == set(), module.__name__


def test_a_dropped_compiler_ends_its_thread():
    dropped = compiler.Compiler()
    assert dropped._on_thread(lambda: "done").result() == "done"
    thread = dropped._thread
    del dropped
    gc.collect()
    wait_until(lambda: not thread.is_alive(), "the dropped compiler's thread to end")


# Loading a kprobe on a syscall makes bcc look up the kernel's syscall prefix (`sys_bpf`, ...) on the
# compiler thread, whose /proc/kallsyms holds two lines. This kernel has no kprobes: the load fails
# after the lookup, which is all the test needs.
LOOKUP_AFTER_A_COMPILE = """
import bcc
from igcore.bpf import Compiler
try:
    Compiler().compile('#include "ig_emit.h"\\nint kprobe__sys_clone(void *ctx) { return 0; }\\n', name="kprobe")
except Exception:
    pass
print(bcc.BPF.ksymname(b"vfs_read"))
"""


def test_a_symbol_lookup_after_a_compile_reads_the_hosts_kallsyms(require_bpf):
    """In a process of its own: bcc keeps the first kernel-symbol table it reads for the process."""
    looked_up = subprocess.run([sys.executable, "-c", LOOKUP_AFTER_A_COMPILE], capture_output=True, text=True,
                               timeout=120)
    assert looked_up.returncode == 0, looked_up.stderr
    with open("/proc/kallsyms") as f:
        real = next(int(line.split()[0], 16) for line in f if line.split()[2] == "vfs_read")
    assert int(looked_up.stdout.split()[-1]) == real


def test_ig_prometheus_compiles_every_program_on_the_one_compiler_it_built(require_bpf, run_ig):
    """Each compiler's thread has a mount namespace of its own: one such thread compiled the cgroup
    watch and both gadgets' programs (a compiler made on the side would add a second)."""
    ig = run_ig("metrics_name: one\nmetrics:\n"
                "  - {name: execs, type: counter, category: trace, gadget: exec}\n"
                "  - {name: dns_queries, type: counter, category: trace, gadget: dns}\n", "--host")
    for gadget in ("exec", "dns"):
        assert ig.value("ig_gadget_running", category="trace", gadget=gadget) == 1, ig.output()
    pid = ig.proc.pid
    own = os.stat(f"/proc/{pid}/ns/mnt").st_ino
    private = {tid for tid in os.listdir(f"/proc/{pid}/task")
               if os.stat(f"/proc/{pid}/task/{tid}/ns/mnt").st_ino != own}
    assert len(private) == 1, private
