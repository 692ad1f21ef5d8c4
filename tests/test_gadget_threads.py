"""A gadget's threads are started through its context (`GadgetContext.spawn`), so the core knows
them without touching `threading` (docs/plugins.md, Threads and Your threads)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import pytest

from igcore.gadgets import GadgetContext
from igcore.isolation import GadgetThreads


def test_importing_ig_leaves_threading_as_python_made_it():
    """In a fresh interpreter: every thread of the process (bcc's, prometheus_client's, a test's)
    starts and reports its exceptions as in any other program."""
    script = ("import threading\n"
              "start, hook = threading.Thread.start, threading.excepthook\n"
              "import igcore.engine, igcore.live, igcore.cli, igcore.api, igcore.bpf.transport\n"
              "print(threading.Thread.start is start, threading.excepthook is hook)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def _raise(message: str) -> None:
    raise RuntimeError(message)


@pytest.fixture
def python_hook(monkeypatch):
    """What reaches Python's threading.excepthook during the test (the test's own recorder)."""
    seen: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    return seen


def test_a_spawned_thread_that_raises_fails_its_gadget_in_one_line(caplog, python_hook):
    ctx = GadgetContext(threads=GadgetThreads("trace t"))
    with caplog.at_level(logging.ERROR, logger="igcore.gadgets"):
        thread = ctx.spawn(_raise, name="t-reader", args=("broken on purpose",))
        thread.join(timeout=30)
        assert ctx.threads.dead()
        assert ctx.threads.dead()   # reported once
    assert ctx.threads.death == "its thread 't-reader' died: RuntimeError: broken on purpose"
    assert [r.getMessage() for r in caplog.records] == [
        "gadget trace t: its thread 't-reader' died: RuntimeError: broken on purpose; the gadget is not running "
        "any more (ig_gadget_running 0), the other gadgets keep running"]
    assert python_hook == []   # handled by the gadget's watch, never Python's hook


def test_a_spawned_thread_that_returns_while_the_gadget_runs_fails_it():
    threads = GadgetThreads("trace t")
    GadgetContext(threads=threads).spawn(lambda: None, name="t-short").join(timeout=30)
    assert threads.dead()


def test_threads_that_end_with_the_gadgets_stop_are_no_failure(caplog):
    threads = GadgetThreads("trace t")
    stop = threading.Event()

    def reader() -> None:
        stop.wait()
        raise RuntimeError("raised while stopping")

    thread = GadgetContext(threads=threads).spawn(reader, name="t-reader")
    assert not threads.dead()
    threads.stopping = True
    stop.set()
    thread.join(timeout=30)
    assert not threads.dead() and threads.death == "" and caplog.records == []


def test_a_thread_started_without_the_context_is_not_the_gadgets(python_hook):
    """Not watched, and its exception goes to Python's hook as in any program."""
    threads = GadgetThreads("trace t")
    GadgetContext(threads=threads)
    thread = threading.Thread(target=_raise, args=("not the gadget's",), daemon=True)
    thread.start()
    thread.join(timeout=30)   # Python calls the hook before the thread ends
    assert [str(e) for e in python_hook] == ["not the gadget's"]
    assert threads.threads == [] and not threads.dead()


def test_run_in_thread_returns_the_result_or_raises_in_the_caller():
    ctx = GadgetContext()
    caller = threading.current_thread()
    assert ctx.run_in_thread(lambda: threading.current_thread() is not caller, name="t-once") is True
    with pytest.raises(OSError, match="no such namespace"):
        ctx.run_in_thread(lambda: _raise_os("no such namespace"), name="t-once")
    assert ctx.threads.threads == [] and not ctx.threads.dead()   # waited for: never a gadget failure


def _raise_os(message: str) -> None:
    raise OSError(message)
