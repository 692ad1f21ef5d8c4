"""One scrape's response: prometheus_client's text or OpenMetrics encoding (by `Accept`), gzip
(by `Accept-Encoding`), and `name[]` honoured (only the series of those names)."""

from __future__ import annotations

import gzip
from urllib.parse import parse_qs

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric


class _OnlyNames:
    """A registry view keeping the samples whose name, or whose family's name, was asked for.

    prometheus_client's own `restricted_registry` finds nothing in a registry whose collectors
    do not describe themselves (ig's build every family at scrape time), so it answered an empty
    200; this filters the collected families instead."""

    def __init__(self, registry, names: set[str]) -> None:
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


def render(registry, query: str, accept: str | None, accept_encoding: str | None) -> tuple[list[tuple[str, str]], bytes]:
    """(headers, body) of a 200 answer to a scrape."""
    names = parse_qs(query).get("name[]")
    source = _OnlyNames(registry, set(names)) if names else registry
    encoder, content_type = choose_encoder(accept or "")
    body = encoder(source)
    headers = [("Content-Type", content_type)]
    if gzip_accepted(accept_encoding or "") and len(body) > 256:
        body = gzip.compress(body, compresslevel=1)
        headers.append(("Content-Encoding", "gzip"))
    return headers, body
