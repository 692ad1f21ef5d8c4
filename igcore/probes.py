"""`/healthz` and `/readyz`: what the kubelet's probes ask (docs/guide.md, "Health probes").

Both are answered on the metrics port without basic auth (the kubelet cannot send credentials),
so they say only what is not secret (docs/security.md): the state of each gadget, and why one is
not running only when the port has no users (the reason is an exception's text). Both are
answered on the event loop from `Engine.status()`, which never waits for the engine's lock.

- `/healthz`: 200 once start-up finished, unless one reload (or the stop) has held the engine for
  longer than --health-stuck-after seconds. An answer at all shows the event loop runs.
- `/readyz`: 200 when start-up finished, no reload is under way, the last config load succeeded
  and every gadget of the config runs; otherwise 503. The body has one line per gadget.
"""

from __future__ import annotations

import unicodedata
from contextlib import contextmanager
from typing import Callable, NamedTuple

from .enginestatus import RUNNING, EngineStatus
from .errors import ConfigError

HEALTHZ = "/healthz"
READYZ = "/readyz"
PATHS = (HEALTHZ, READYZ)

# A reload compiles eBPF (seconds, tens on a loaded node); one that holds the engine this long is stuck.
STUCK_AFTER = 120.0
REASON_LIMIT = 200   # characters of a failure's reason shown per line


class ProbeAnswer(NamedTuple):
    status: int
    body: bytes


def check_metrics_path(path: str) -> None:
    if path in PATHS:
        raise ConfigError(f"--metrics-path {path} is the path of a health probe; choose another")


def one_line(text: str, limit: int = REASON_LIMIT) -> str:
    """`text` as one printable line: control, format and separator characters (and lone
    surrogates, which UTF-8 cannot encode) escaped as \\uXXXX; cut at `limit` characters."""
    out = []
    for ch in text[:limit]:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out) + ("…" if len(text) > limit else "")


class Probes:
    """The answers of both probes, from the engine's status and the config's load status."""

    def __init__(self, status: Callable[[], EngineStatus], config_ok: Callable[[], bool],
                 stuck_after: float = STUCK_AFTER) -> None:
        self._status, self._config_ok, self._stuck_after = status, config_ok, stuck_after
        self._reloading = False

    @contextmanager
    def reloading(self):
        """Around a whole reload, from reading the file to the new gadgets running: the config's
        load status changes before the engine has applied it, so readiness waits for both."""
        self._reloading = True
        try:
            yield
        finally:
            self._reloading = False

    def answer(self, path: str, reasons: bool) -> ProbeAnswer | None:
        """The answer for `path`, None if it is no probe's. `reasons`: say why a gadget fails."""
        if path == HEALTHZ:
            return self.health()
        if path == READYZ:
            return self.readiness(reasons)
        return None

    def health(self) -> ProbeAnswer:
        status = self._status()
        if not status.started:
            return _answer(503, [f"starting: the gadgets are starting ({status.busy_seconds:.0f} s)"])
        if status.busy is not None and status.busy_seconds > self._stuck_after:
            return _answer(503, [f"stuck: one {status.busy} has held the engine for {status.busy_seconds:.0f} s"])
        return _answer(200, ["ok"])

    def readiness(self, reasons: bool) -> ProbeAnswer:
        status = self._status()
        if not status.started:
            return _answer(503, ["not ready: starting"])
        config_ok, reloading = self._config_ok(), self._reloading
        lines = []
        if not config_ok:
            lines.append("config: the last load failed (see ig's log)")
        for gadget in status.gadgets:
            line = f"{one_line(gadget.label)}: {one_line(gadget.state)}"
            if gadget.state != RUNNING and reasons and gadget.reason:
                line += f": {one_line(gadget.reason)}"
            lines.append(line)
        ready = not status.failed and config_ok and not reloading
        head = "ready" if ready else "not ready: reloading the config" if reloading else "not ready"
        return _answer(200 if ready else 503, [head, *lines])


def route(probes: Probes | None, path: str, reasons: bool) -> ProbeAnswer | None:
    """The metrics server's hook, before basic auth: a probe's answer, or None for every other path.
    `reasons` False (basic auth users in the web config): failures are named without their reasons."""
    if probes is None or path not in PATHS:
        return None
    return probes.answer(path, reasons=reasons)


def _answer(status: int, lines: list[str]) -> ProbeAnswer:
    return ProbeAnswer(status, ("\n".join(lines) + "\n").encode("utf-8"))
