"""Responses matched to their queries: the bounded query table, its expiry and eviction (no kernel needed)."""

from __future__ import annotations

import ig_gadget_dns.plugin as plugin
from igcore.gadgets import GadgetContext


def row(qr: str, ident: int, netns: int = 1, client: tuple = ("10.0.0.9", 40000)) -> dict:
    ends = [*client, "10.0.0.53", 53]
    if qr == "R":
        ends = ends[2:] + ends[:2]
    return {"qr": qr, "id": ident, "netns": netns, "srcIP": ends[0], "srcPort": ends[1], "dstIP": ends[2],
            "dstPort": ends[3], "latency": 0}


def test_a_response_matches_only_its_own_query():
    gadget = plugin.DnsGadget(GadgetContext(host=True))
    gadget._match(row("Q", 7, netns=1), 1_000)
    gadget._match(row("Q", 7, netns=2), 2_000)
    other_port = row("R", 7, netns=1, client=("10.0.0.9", 40001))
    gadget._match(other_port, 5_000)
    response = row("R", 7, netns=1)
    gadget._match(response, 6_000)
    again = row("R", 7, netns=1)
    gadget._match(again, 7_000)
    assert (other_port["latency"], response["latency"], again["latency"]) == (0, 5_000, 0)
    assert gadget.stats.extra["dns_unmatched_responses"] == 2


def test_queries_expire_after_ten_seconds_of_kernel_time():
    gadget = plugin.DnsGadget(GadgetContext(host=True))
    gadget._match(row("Q", 1), 0)
    gadget._match(row("Q", 2), 5_000_000_000)
    late = row("R", 1)
    gadget._match(late, plugin.QUERY_TTL_NS + 1)
    in_time = row("R", 2)
    gadget._match(in_time, plugin.QUERY_TTL_NS + 2)
    assert (late["latency"], in_time["latency"]) == (0, plugin.QUERY_TTL_NS + 2 - 5_000_000_000)
    assert gadget.stats.extra["dns_queries_expired"] == 1


def test_the_table_is_bounded_and_evicts_the_oldest(monkeypatch):
    monkeypatch.setattr(plugin, "QUERY_TABLE_SIZE", 3)
    gadget = plugin.DnsGadget(GadgetContext(host=True))
    for ident in range(5):
        gadget._match(row("Q", ident), ident)
    assert len(gadget._queries) == 3 and gadget.stats.extra["dns_queries_evicted"] == 2
    oldest, newest = row("R", 0), row("R", 4)
    gadget._match(oldest, 10)
    gadget._match(newest, 10)
    assert (oldest["latency"], newest["latency"]) == (0, 6)
