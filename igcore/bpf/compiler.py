"""ig's BPF compiler: one object that imports bcc, compiles programs one at a time on a thread of
its own, takes programs begun early, and gives back the memory compiling left behind.

The `ig` executable builds one (igcore.main) and hands it down: to the engine, which gives it to
each gadget in its GadgetContext (`compile_program(..., ctx=self.ctx)`), and to the cgroup watch.
Everything it holds is its own: two compilers in one process share no queue, thread or early
program. docs/architecture.md shows where it sits on the data path.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import weakref
from concurrent.futures import Future
from typing import TYPE_CHECKING, Callable

from .. import signals
from ..errors import RuntimeFailure
from . import private_kallsyms
from .memory import release_compiler_memory
from .source import include_dir, with_transport
from .stats import LoadedPrograms

if TYPE_CHECKING:
    from ..gadgets import GadgetContext

log = logging.getLogger("igcore.bpf")

# bcc 0.26 cannot compile two programs at once in one process: its front end shares a kernel-symbol
# cache between compilations (a static in b_frontend_action.cc), and two concurrent BPF() calls
# crashed (SIGSEGV/SIGABRT) 20 runs out of 20. That state is the library's, one per process, so
# this lock is too: it is all two compilers share, and it keeps the memory give-back out of a compile.
BCC_FRONT_END = threading.Lock()

Job = Callable[[], object]


class BpfUnavailable(RuntimeFailure):
    """bcc cannot be imported or the kernel refused the program."""


def import_bcc():
    try:
        import bcc  # Debian's python3-bpfcc
    except ImportError as exc:
        raise BpfUnavailable(
            "bcc's Python module is not importable: install Debian's python3-bpfcc "
            "(run `make run` once to set everything up)"
        ) from exc
    return bcc


class Compiler:
    """Compiles on one thread, started at the first compile, in a mount namespace of its own
    (igcore.bpf.private_kallsyms)."""

    def __init__(self) -> None:
        self._jobs: "queue.SimpleQueue[tuple[Job, Future] | None]" = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        # Programs compile_early began, by (text, cflags): the next compile of the same takes it.
        self._early: dict[tuple[str, tuple[str, ...]], Future] = {}
        weakref.finalize(self, self._jobs.put, None)   # a dropped compiler ends its thread
        self.programs = LoadedPrograms()   # what each program it loaded costs (ig_bpf_program_*)

    def compile(self, text: str, cflags: list[str] | None = None, name: str = "gadget", kernel=None):
        """Compile and load `text` (which includes "ig_emit.h"); tracepoints attach automatically.

        `kernel`: the gadget context's `kernel` (metrics aggregated in the program and its counting
        window), or None; a program compile_early began is taken only without one.
        """
        early = self._early.pop(_key(text, cflags), None) if kernel is None else None
        bpf = (early or self._submit(text, cflags, name, kernel)).result()
        self.programs.add(bpf, *_owner(kernel, name))
        if kernel is not None:
            kernel.loaded(bpf)   # the core reads its maps from here on
        return bpf

    def compile_early(self, text: str, cflags: list[str] | None = None, name: str = "gadget") -> None:
        """Begin compiling (and attaching) `text` now, while ig still loads in Python (bcc compiles
        without the GIL); the next `compile(text, cflags)` takes this one instead of compiling
        again, and raises what it raised."""
        self._early[_key(text, cflags)] = self._submit(text, cflags, name, None)

    def release_memory(self) -> None:
        """Give back what compiling left behind (igcore.bpf.memory), never during a compile: it
        would only map the pages back at once. Never raises."""
        with BCC_FRONT_END:
            release_compiler_memory()

    def _submit(self, text: str, cflags: list[str] | None, name: str, kernel) -> Future:
        flags = [f"-I{include_dir}", *(cflags or [])]
        generated = ""
        if kernel is not None:
            generated = kernel.c_code()
            flags.extend(kernel.cflags())
        source = with_transport(text, generated).encode()

        def job():
            if os.geteuid() != 0:
                raise BpfUnavailable(f"loading the {name} gadget's eBPF program needs root (run ig as root)")
            bcc = import_bcc()
            try:
                with BCC_FRONT_END:
                    return bcc.BPF(text=source, cflags=flags)
            except Exception as exc:
                raise BpfUnavailable(f"the kernel or bcc refused the {name} gadget's eBPF program: {exc}") from exc

        return self._on_thread(job)

    def _on_thread(self, job: Job) -> Future:
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=_serve, args=(self._jobs,), name="ig-bpf-compiler",
                                                daemon=True)
                self._thread.start()
        future: Future = Future()
        self._jobs.put((job, future))
        return future


def compile_program(text: str, cflags: list[str] | None = None, name: str = "gadget", *, ctx: GadgetContext):
    """The plugin API: compile and load a gadget's `text` with the compiler and the kernel-side
    metrics of its context (`ctx=self.ctx`); see Compiler.compile."""
    if ctx.compiler is None:   # a gadget made outside ig (a plugin's test)
        ctx.compiler = Compiler()
    return ctx.compiler.compile(text, cflags, name, kernel=ctx.kernel)


def _owner(kernel, name: str) -> tuple[str, str]:
    """The category and gadget a program's costs are reported under: its gadget's, or the core's
    own (the cgroup watch) for a program compiled without a gadget's kernel side."""
    spec = getattr(kernel, "spec", None)
    if spec is not None:
        return spec.category.value, spec.name
    return "core", name.replace(" ", "_")


def _key(text: str, cflags: list[str] | None) -> tuple[str, tuple[str, ...]]:
    return text, tuple(cflags or ())


def _serve(jobs: "queue.SimpleQueue[tuple[Job, Future] | None]") -> None:
    # igcore.main blocked ig's stop and reload signals before any thread for the commands that wait
    # for them; `ig snapshot` does not, and a signal pending while the verifier runs makes the
    # kernel refuse the program (EAGAIN): so this thread blocks them for itself too.
    signals.block()
    try:
        private_kallsyms.enter()
    except OSError as exc:
        log.debug("bcc compiles with the host's /proc/kallsyms (slower): %s", exc)
    while (item := jobs.get()) is not None:
        job, future = item
        try:
            with private_kallsyms.symbol_caches_forgotten():   # before the caller goes on
                result = job()
        except BaseException as exc:  # handed to the caller
            future.set_exception(exc)
        else:
            future.set_result(result)
