"""The counters dns.bpf.c keeps (dns_counts) and its query table, read as the gadget's `stats.extra`.

The kernel matches responses to queries in an LRU hash. A query nobody answers stays there until
it is looked up or the LRU drops it; so that `dns_queries_expired` says, as it always did, how many
queries went unanswered for QUERY_TTL_NS, each read removes (and counts) the expired entries.
The LRU's own evictions are invisible to BPF: they are what was inserted and neither removed nor
still there, kept monotonic (a read racing the kernel may see an insert before its entry).
"""

from __future__ import annotations

import ctypes
import threading
import time
from typing import Any

# The order of the C enum in dns.bpf.c.
KERNEL_COUNTERS = ("expired", "unmatched", "inserted", "removed", "malformed", "continuations", "retransmissions")

# stats.extra names (ig_gadget_<name>_total) of the counters exposed.
EXPOSED = {"expired": "dns_queries_expired", "unmatched": "dns_unmatched_responses",
           "malformed": "dns_malformed", "continuations": "dns_tcp_continuations",
           "retransmissions": "dns_tcp_retransmissions"}
EVICTED = "dns_queries_evicted"
NAMES = frozenset([*EXPOSED.values(), EVICTED])


class KernelCounters(dict):
    """A gadget's `stats.extra`: its own entries (the transport's) plus the kernel's, read when asked."""

    def __init__(self, ttl_ns: int) -> None:
        super().__init__({name: 0 for name in NAMES})
        self._ttl_ns = ttl_ns
        self._bpf: Any = None   # bcc's BPF object, from attach()
        self._swept = 0   # expired queries removed here, not by the kernel
        self._evicted = 0
        self._read_at = 0.0
        self._lock = threading.Lock()

    def attach(self, bpf) -> None:
        self._bpf = bpf

    def detach(self) -> None:
        """Keep the last values read: the program is about to go."""
        self.refresh(max_age=0)
        self._bpf = None

    # Every way of reading all of it refreshes (dict(counters) goes through __iter__ and __getitem__).
    def __iter__(self):
        self.refresh()
        return super().__iter__()

    def items(self):
        self.refresh()
        return super().items()

    def values(self):
        self.refresh()
        return super().values()

    def __getitem__(self, key):
        if key in NAMES:
            self.refresh()
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def refresh(self, max_age: float = 0.01) -> None:
        """Read the kernel's counters, unless read within `max_age` s (a scrape reads them all at once)."""
        with self._lock:
            if self._bpf is None or time.monotonic() - self._read_at < max_age:
                return
            self._read_at = time.monotonic()
            table = self._bpf[b"dns_counts"]
            counts = {name: int(sum(table[ctypes.c_int(i)])) for i, name in enumerate(KERNEL_COUNTERS)}
            live = self._sweep()
            counts["expired"] += self._swept
            for name, exposed in EXPOSED.items():
                super().__setitem__(exposed, counts[name])
            evicted = counts["inserted"] - counts["removed"] - self._swept - live
            self._evicted = max(self._evicted, evicted)
            super().__setitem__(EVICTED, self._evicted)

    def _sweep(self) -> int:
        """Remove the queries older than the TTL; the number of entries left."""
        queries = self._bpf[b"dns_queries"]
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)   # bpf_ktime_get_ns's clock
        entries = list(queries.items())
        stale = [key for key, sent in entries if now - sent.value > self._ttl_ns]
        for key in stale:
            try:
                del queries[key]
            except KeyError:
                continue   # the kernel removed it first (its response came, late)
            self._swept += 1
        return len(entries) - len(stale)
