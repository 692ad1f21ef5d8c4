"""snapshot process with 10,000 real processes: the task iterator and the /proc reader both give
exactly the processes the test made (docs/config.md, snapshot process)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from igcore.gadgets import GadgetContext
from igcore.plugins import load_catalog
from ig_gadget_process.procfs import pids, read_rows

# Each name's count of children; "ig-snap-zombie" children exit at once and stay unreaped (zombies).
NAMES = {"ig-snap-a": 4000, "ig-snap-b": 3000, "ig-snap-c": 2000, "ig-snap-zombie": 1000}

# A fresh small interpreter forks the children (pytest's own process would copy its memory 10,000
# times); each child names itself and says so on `named`, then blocks on `hold` (or exits). The
# parent prints its pid once every child is named, and reaps nothing until its stdin closes.
PARENT = r"""
import ctypes, os, sys
prctl = ctypes.CDLL(None).prctl
names = eval(sys.argv[1])
hold_r, hold_w = os.pipe()
named_r, named_w = os.pipe()
total = 0
for name, count in names.items():
    for _ in range(count):
        if os.fork() == 0:
            prctl(15, name.encode())   # PR_SET_NAME
            os.write(named_w, b".")
            if name.endswith("zombie"):
                os._exit(0)
            os.close(hold_w)
            os.read(hold_r, 1)
            os._exit(0)
        total += 1
got = 0
while got < total:
    got += len(os.read(named_r, total - got))
print(os.getpid(), flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def children():
    """(the parent's pid, the count per name) of 10,000 children that live until the module ends."""
    parent = subprocess.Popen([sys.executable, "-S", "-c", PARENT, repr(NAMES)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        assert line.strip() == str(parent.pid), "the parent of the children did not start them all"
        yield parent.pid, Counter(NAMES)
    finally:
        parent.stdin.close()   # the parent exits; its children see the pipe close and exit too
        parent.wait(timeout=120)


def their_rows(rows, parent):
    return {r["pid"]: r for r in rows if r["ppid"] == parent}


def test_the_proc_reader_finds_every_child(children):
    parent, expected = children
    rows = their_rows(read_rows(pids()), parent)
    assert Counter(r["comm"] for r in rows.values()) == expected
    zombies = [r for r in rows.values() if r["comm"] == "ig-snap-zombie"]
    assert all(r["mntns"] == 0 for r in zombies)   # an exited process has no namespaces left
    assert all(r["mntns"] > 0 and r["threads"] == 1 for r in rows.values() if r["comm"] != "ig-snap-zombie")


def test_the_task_iterator_gives_the_proc_readers_rows(children, require_bpf):
    parent, expected = children
    gadget = load_catalog().get("snapshot", "process").factory(GadgetContext(host=True))
    try:
        gadget.load_iterator()
        assert gadget.reader == "task iterator"
        by_iterator = their_rows(gadget.snapshot(), parent)
        by_proc = their_rows(read_rows(pids()), parent)
        assert Counter(r["comm"] for r in by_iterator.values()) == expected
        assert by_iterator == by_proc   # row for row, every column
        assert any(r["pid"] == os.getpid() for r in gadget.snapshot())
    finally:
        gadget.close()


def test_kernel_threads_have_the_names_proc_gives_them(require_bpf):
    """A kernel thread's comm holds 15 bytes of its name; /proc shows it whole (kworker/R-rcu_gp)."""
    def stable_kernel_threads(rows):   # a busy workqueue worker's /proc name changes with its work
        return {r["pid"]: r for r in rows
                if r["ppid"] == 2 and (not r["comm"].startswith("kworker/") or r["comm"].startswith("kworker/R-"))}

    gadget = load_catalog().get("snapshot", "process").factory(GadgetContext(host=True))
    try:
        gadget.load_iterator()
        assert gadget.reader == "task iterator"
        by_iterator = stable_kernel_threads(gadget.snapshot())
    finally:
        gadget.close()
    assert by_iterator == stable_kernel_threads(read_rows(pids()))
    assert any(len(r["comm"]) > 15 for r in by_iterator.values())
