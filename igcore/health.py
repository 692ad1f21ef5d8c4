"""Long-lived loops that survive their own errors.

Every thread of ig that runs for the life of the process (a gadget's reader, the enricher's retry
loop, the container sources) reports an exception here instead of dying: it is counted by component
and gadget (exposed as `ig_loop_errors_total`) and logged at most once a minute per component and
gadget, so a loop failing on every iteration cannot flood the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

log = logging.getLogger("igcore.health")

LOG_EVERY_SECONDS = 60.0

# Every loop that reports here, so each is exported from 0 (tests/test_self_metrics_zero.py finds
# every component named at a `record` call among these). Per gadget of the config:
GADGET_COMPONENTS = ("aggregate", "collect", "enricher.retry", "netns", "sink", "transport")
# Once per process (gadget ""); each container source's loop adds `containers.<source name>`:
PROCESS_COMPONENTS = ("config-watch", "containers.docker-events", "containers.pod-watch", "containers.refresh",
                      "containers.state-dirs", "containers.state-watch", "containers.subscriber", "http",
                      "series-sweep")


class LoopErrors:
    """Thread-safe counts of errors caught in long-lived loops, keyed by (component, gadget)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._last_logged: dict[tuple[str, str], float] = {}
        self._clock = clock

    def record(self, component: str, exc: BaseException, gadget: str = "") -> None:
        """Count `exc` for this loop; log it unless this loop logged less than a minute ago."""
        key = (component, gadget)
        now = self._clock()
        with self._lock:
            self._counts[key] += 1
            last = self._last_logged.get(key)
            quiet = last is not None and now - last < LOG_EVERY_SECONDS
            if not quiet:
                self._last_logged[key] = now
            count = self._counts[key]
        if not quiet:
            where = f"{component} ({gadget})" if gadget else component
            log.error("%s: %s: %s (error %d of this loop; it keeps running)", where, type(exc).__name__, exc, count,
                      exc_info=log.isEnabledFor(logging.DEBUG), extra={"gadget": gadget or None})

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)


# One per process: loops of every gadget and component report here; the collector reads it.
loop_errors = LoopErrors()
