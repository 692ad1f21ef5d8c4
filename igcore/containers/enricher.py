"""Adds the container columns to rows, drops host rows unless --host, and holds rows whose container
is being created until its metadata arrives (bounded in time and number), so none is lost or mislabelled."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from ..health import loop_errors
from .collection import ContainerCollection
from .model import HOST_COLUMNS, Container
from .resolver import PENDING

MAX_HELD = 100_000


class Enricher:
    def __init__(self, containers: ContainerCollection, key: str, host: bool, sink: Callable[[list[dict]], None],
                 hold_seconds: float = 2.0, gadget: str = "") -> None:
        self.containers, self.key, self.host, self.sink = containers, key, host, sink
        self.gadget = gadget   # names the retry loop's errors in ig_loop_errors_total
        self.hold_seconds = hold_seconds
        self.dropped_host = 0
        self.held = 0       # rows ever held
        self.expired = 0    # held rows whose container never showed up (then treated as host rows)
        self._held: list[tuple[float, dict]] = []
        self._lock = threading.Lock()   # one delivery at a time keeps rows in order
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._timer: threading.Thread | None = None

    def _labels(self, found: Container | None) -> dict[str, str] | None:
        """The columns to add for a container (or a host row), None to drop a host row."""
        if found is not None:
            return self.containers.columns_of(found)
        return {**HOST_COLUMNS, **self.containers.pods.columns("", "")} if self.host else None

    def labels_for(self, value: int) -> tuple[object, Container | None]:
        """For a container key value that a kernel map holds: its container columns (None for a
        host row to drop, PENDING while its container may still show up), and its container."""
        found = self.containers.resolve(self.key, value)
        if found is PENDING:
            return PENDING, None
        return self._labels(found.container), found.container

    def labels_when_unclaimed(self) -> dict[str, str] | None:
        """What a key that stayed pending past `hold_seconds` gets: the host's columns, as a held row."""
        return self._labels(None)

    def _label(self, row: dict, labels: dict[str, str] | None, out: list[dict]) -> None:
        if labels is None:
            self.dropped_host += 1
        else:
            row.update(labels)
            out.append(row)

    def _resolver(self) -> Callable[[dict], Any]:
        """A row's labels (see _labels) or PENDING, with one resolution per key value."""
        cache: dict[int, object] = {}
        key, resolve = self.key, self.containers.resolve

        def labels_of(row: dict):
            value = row.get(key, 0)
            hit = cache.get(value, cache)
            if hit is cache:
                found = resolve(key, value)
                hit = cache[value] = found if found is PENDING else self._labels(found.container)
            return hit
        return labels_of

    def _enrich(self, rows: list[dict], hold: bool) -> tuple[list[dict], list[dict]]:
        """(rows to deliver, rows to hold)."""
        out: list[dict] = []
        pending: list[dict] = []
        labels_of = self._resolver()
        keep, dropped = out.append, 0
        for row in rows:   # the per-row path: a dict lookup and an update
            labels = labels_of(row)
            if labels is PENDING:
                if hold:
                    pending.append(row)
                    continue
                labels = self._labels(None)
            if labels is None:
                dropped += 1
            else:
                row.update(labels)
                keep(row)
        self.dropped_host += dropped
        return out, pending

    def __call__(self, rows: list[dict]) -> None:
        now = time.monotonic()
        with self._lock:
            room = MAX_HELD - len(self._held)
            out, pending = self._enrich(rows, hold=room > 0)
            if len(pending) > room:   # bounded: the excess is treated as host rows at once
                self.expired += len(pending) - room
                for row in pending[room:]:
                    self._label(row, self._labels(None), out)
                pending = pending[:room]
            if pending:
                self.held += len(pending)
                self._held.extend((now + self.hold_seconds, r) for r in pending)
                self._ensure_timer()
                self._wake.set()
            if out:
                self.sink(out)

    def enrich_now(self, rows: list[dict]) -> list[dict]:
        out, _ = self._enrich(rows, hold=False)
        return out

    def _ensure_timer(self) -> None:
        if self._timer is None:
            self._timer = threading.Thread(target=self._retry_loop, name="ig-enrich-hold", daemon=True)
            self._timer.start()

    def _retry(self, final: bool = False) -> None:
        with self._lock:
            if not self._held:
                return
            now = time.monotonic()
            held, self._held = self._held, []
            ready: list[dict] = []
            still: list[tuple[float, dict]] = []
            labels_of = self._resolver()
            for deadline, row in held:
                labels = labels_of(row)
                if labels is PENDING and not final and now < deadline:
                    still.append((deadline, row))
                    continue
                if labels is PENDING:
                    self.expired += 1
                    labels = self._labels(None)
                self._label(row, labels, ready)
            self._held = still
            if ready:
                self.sink(ready)

    def _retry_loop(self) -> None:
        """Every 20 ms while rows are held; idle otherwise. An error (a failing sink) is counted and
        the loop goes on: the rows held later still find their container."""
        while not self._stop.is_set():
            if not self._held:
                self._wake.wait()
                self._wake.clear()
            elif not self._stop.wait(0.02):
                try:
                    self._retry()
                except Exception as exc:
                    loop_errors.record("enricher.retry", exc, gadget=self.gadget)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._timer is not None:
            self._timer.join(timeout=5)
        self._retry(final=True)
