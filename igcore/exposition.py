"""One scrape's response: prometheus_client's text or OpenMetrics encoding, or Prometheus'
protobuf format (igcore.promproto), by `Accept` and its q-values; gzip (by `Accept-Encoding`),
and `name[]` honoured (only the series of those names).

Scrapes that arrive together share one render: a scrape joins a render that has not started
yet, never one already running, so every answer is collected after its request arrived. Twenty
scrapers firing at once then cost two renders (the first arrival's, and one for all the others)
instead of twenty turns at the GIL.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import threading
from typing import Callable, NamedTuple
from urllib.parse import parse_qs

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest, gzip_accepted
from prometheus_client.metrics_core import Metric

from .promproto import CONTENT_TYPE as PROTOBUF_CONTENT_TYPE
from .promproto import generate_protobuf


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


class ScrapeKey(NamedTuple):
    """What makes two scrapes' answers identical. The content type names the format, its version
    and escaping, so it stands for the encoder (a new object per call in prometheus_client)."""

    content_type: str
    compress: bool
    names: frozenset[str]


def scrape_key(query: str, accept: str | None, accept_encoding: str | None) -> tuple[ScrapeKey, Callable]:
    """(the key, the encoder) of a scrape: encoding, compression, names asked for."""
    names = frozenset(parse_qs(query).get("name[]", ()))
    encoder, content_type = _choose_encoder(accept or "")
    return ScrapeKey(content_type, gzip_accepted(accept_encoding or ""), names), encoder


def _choose_encoder(accept: str) -> tuple[Callable, str]:
    """Protobuf when the scraper prefers it (docs/config.md, "Native histograms"); otherwise
    prometheus_client's choice, or the text format when it cannot parse the header (a version
    such as `abc` raises in it)."""
    if _prefers_protobuf(accept):
        return generate_protobuf, PROTOBUF_CONTENT_TYPE
    try:
        return choose_encoder(accept)
    except Exception:
        return generate_latest, CONTENT_TYPE_PLAIN_0_0_4


_PROTOBUF, _FAMILY = "application/vnd.google.protobuf", "io.prometheus.client.MetricFamily"


def _prefers_protobuf(accept: str) -> bool:
    """True when `accept` names the delimited MetricFamily protobuf with a q-value above 0 and at
    least as high as any other media range's (as a Prometheus with native histograms on sends)."""
    protobuf, others = 0.0, 0.0
    for media_range in accept.split(","):
        kind, *params = (part.strip() for part in media_range.split(";"))
        options = dict(p.partition("=")[::2] for p in params)
        try:
            q = float(options.pop("q", "1"))
        except ValueError:
            q = 0.0
        if not 0.0 <= q <= 1.0:
            q = 0.0
        if kind.lower() == _PROTOBUF and options.get("proto") == _FAMILY and options.get("encoding") == "delimited":
            protobuf = max(protobuf, q)
        elif kind:
            others = max(others, q)
    return protobuf > 0 and protobuf >= others


def render(registry, key: ScrapeKey, encoder: Callable) -> tuple[list[tuple[str, str]], bytes]:
    """(headers, body) of a 200 answer to a scrape."""
    body = encoder(_OnlyNames(registry, key.names) if key.names else registry)
    headers = [("Content-Type", key.content_type)]
    if key.compress and len(body) > 256:
        body = gzip.compress(body, compresslevel=1)
        headers.append(("Content-Encoding", "gzip"))
    return headers, body


class SharedRenders:
    """Renders in `pool`, at most one at a time per key. Scrapes that arrive while a render of
    their key runs wait for the next one, which starts when it ends and serves all of them."""

    def __init__(self, registry, pool: concurrent.futures.Executor) -> None:
        self._registry, self._pool = registry, pool
        self._lock = threading.Lock()
        self._running: set[ScrapeKey] = set()
        self._waiting: dict[ScrapeKey, tuple[concurrent.futures.Future, Callable]] = {}
        self.renders = 0

    def submit(self, key: ScrapeKey, encoder: Callable) -> concurrent.futures.Future:
        with self._lock:
            if key in self._waiting:
                return self._waiting[key][0]
            future: concurrent.futures.Future = concurrent.futures.Future()
            future.set_running_or_notify_cancel()  # one evicted scrape must not cancel the others' answer
            if key in self._running:
                self._waiting[key] = future, encoder
            else:
                self._start(key, future, encoder)
            return future

    def _start(self, key: ScrapeKey, future: concurrent.futures.Future, encoder: Callable) -> None:
        """Called with the lock held."""
        self._running.add(key)
        self.renders += 1
        self._pool.submit(self._render, key, future, encoder)

    def _render(self, key: ScrapeKey, future: concurrent.futures.Future, encoder: Callable) -> None:
        try:
            future.set_result(render(self._registry, key, encoder))
        except BaseException as exc:  # the scrapes get the error; the pool thread goes on
            future.set_exception(exc)
        finally:
            with self._lock:
                self._running.discard(key)
                waiting = self._waiting.pop(key, None)
                if waiting is not None:
                    self._start(key, *waiting)
