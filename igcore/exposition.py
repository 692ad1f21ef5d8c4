"""One scrape's response: prometheus_client's text or OpenMetrics encoding (by `Accept`), gzip
(by `Accept-Encoding`), and `name[]` honoured (only the series of those names).

Scrapes that arrive together share one render: a scrape joins a render that has not started
yet, never one already running, so every answer is collected after its request arrived. Twenty
scrapers firing at once then cost about two renders instead of twenty turns at the GIL.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import threading
from urllib.parse import parse_qs

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric


class _OnlyNames:
    """A registry view keeping the samples whose name, or whose family's name, was asked for.

    prometheus_client's own `restricted_registry` finds nothing in a registry whose collectors
    do not describe themselves (ig's build every family at scrape time), so it answered an empty
    200; this filters the collected families instead."""

    def __init__(self, registry, names: frozenset[str]) -> None:
        self._registry, self._names = registry, names

    def collect(self):
        for family in self._registry.collect():
            if family.name in self._names:
                yield family
                continue
            samples = [s for s in family.samples if s.name in self._names]
            if samples:
                kept = Metric(family.name, family.documentation, family.type, family.unit)
                kept.samples = samples
                yield kept


def scrape_key(query: str, accept: str | None, accept_encoding: str | None) -> tuple:
    """What makes two scrapes' answers identical: encoding, compression, names asked for."""
    names = frozenset(parse_qs(query).get("name[]", ()))
    return *choose_encoder(accept or ""), gzip_accepted(accept_encoding or ""), names


def render(registry, key: tuple) -> tuple[list[tuple[str, str]], bytes]:
    """(headers, body) of a 200 answer to a scrape."""
    encoder, content_type, compress, names = key
    body = encoder(_OnlyNames(registry, names) if names else registry)
    headers = [("Content-Type", content_type)]
    if compress and len(body) > 256:
        body = gzip.compress(body, compresslevel=1)
        headers.append(("Content-Encoding", "gzip"))
    return headers, body


class SharedRenders:
    """Renders in `pool`, shared by the scrapes of one key that wait for the same render to start."""

    def __init__(self, registry, pool: concurrent.futures.Executor) -> None:
        self._registry, self._pool = registry, pool
        self._lock = threading.Lock()
        self._waiting: dict[tuple, concurrent.futures.Future] = {}
        self.renders = 0

    def submit(self, key: tuple) -> concurrent.futures.Future:
        with self._lock:
            future = self._waiting.get(key)
            if future is None:
                future = self._waiting[key] = self._pool.submit(self._render, key)
            return future

    def _render(self, key: tuple):
        with self._lock:  # from now on, a new scrape waits for the next render
            self._waiting.pop(key, None)
            self.renders += 1
        return render(self._registry, key)
