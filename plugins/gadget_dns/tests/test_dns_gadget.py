"""trace dns on the real kernel: a real resolver (dns_server.py, beside this file) and real clients (dig)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from dns_server import BIG_ANSWERS, addresses
from dns_server import dig
from dns_server import start as start_server

from tests.fixtures.barrier import drained
from tests.fixtures.waiting import wait_until


def test_n_queries_give_n_queries_and_n_responses_in_their_namespace(watched, netns):
    gadget, rows, inside = watched
    tag = uuid.uuid4().hex[:8]
    for i in range(7):
        assert "10.0.0.1" in dig(inside, f"q{i}.{tag}.test")
    mine = lambda rs: [r for r in rs if tag in r["name"]]
    wait_until(lambda: len(mine(rows.rows)) >= 14)
    drained(gadget.stats)  # nothing more may arrive: each message once, though loopback shows it twice
    found = mine(rows.rows)
    assert len([r for r in found if r["qr"] == "Q"]) == 7
    assert len([r for r in found if r["qr"] == "R"]) == 7
    ns = netns.inode
    assert {r["netns"] for r in found} == {ns}
    response = next(r for r in found if r["qr"] == "R")
    assert response["name"] == f"q0.{tag}.test." or response["name"].endswith(f".{tag}.test.")
    assert (response["qtype"], response["rcode"], response["numAnswers"]) == ("A", "NoError", 2)
    assert response["addresses"] == "10.0.0.1,10.0.0.2"
    assert (response["srcIP"], response["srcPort"], response["proto"]) == ("127.0.0.1", 53, "UDP")
    assert response["pktType"] == "HOST" and response["latency"] > 0
    assert gadget.stats.decode_errors == 0 and gadget.stats.events_lost == 0


def test_latency_matches_the_resolver_delay_tcp_and_nxdomain(dns_gadget, netns):
    gadget, rows = dns_gadget
    inside = netns.run
    server = start_server(inside, "127.0.0.1", delay=0.05)
    try:
        gadget.add_netns(netns.inode, netns.path)
        tag = uuid.uuid4().hex[:8]
        dig(inside, f"udp.{tag}.test")
        dig(inside, f"tcp.{tag}.test", "127.0.0.1", "+tcp")
        dig(inside, f"missing.{tag}.test")
        responses = lambda rs: [r for r in rs if tag in r["name"] and r["qr"] == "R"]
        wait_until(lambda: len(responses(rows.rows)) >= 3)
        by_name = {r["name"].split(".")[0]: r for r in responses(rows.rows)}
        for r in by_name.values():
            assert 50_000_000 <= r["latency"] < 80_000_000, r   # the 50 ms delay, plus a little
        assert by_name["tcp"]["proto"] == "TCP"
        assert by_name["missing"]["rcode"] == "NXDomain" and by_name["missing"]["numAnswers"] == 0
    finally:
        server.kill()


def test_ipv6_and_removed_namespace(dns_gadget, netns):
    gadget, rows = dns_gadget
    inside = netns.run
    server = start_server(inside, "::1")
    try:
        ns = netns.inode
        gadget.add_netns(ns, netns.path)
        tag = uuid.uuid4().hex[:8]
        dig(inside, f"v6.{tag}.test", "::1")
        wait_until(lambda: any(tag in r["name"] and r["qr"] == "R" for r in rows.rows))
        found = rows.rows
        response = next(r for r in found if tag in r["name"] and r["qr"] == "R")
        assert (response["srcIP"], response["dstIP"]) == ("::1", "::1")
        gadget.remove_netns(ns)
        dig(inside, f"after.{tag}.test", "::1")
        drained(gadget.stats)
        assert not any(r["name"].startswith("after.") for r in rows.rows)
    finally:
        server.kill()


def test_a_namespace_shared_by_two_containers_stays_watched_and_the_host_is_never_dropped(watched, netns):
    gadget, rows, inside = watched    # the fixture added the namespace for one container of a pod
    gadget.add_netns(netns.inode, netns.path)   # a second container of that pod
    gadget.remove_netns(netns.inode)            # one of them stops
    host = os.stat("/proc/self/ns/net").st_ino
    gadget.add_netns(host, "/proc/self/ns/net")   # a --network host container starts...
    gadget.remove_netns(host)                     # ...and stops
    tag = uuid.uuid4().hex[:8]
    dig(inside, f"shared.{tag}.test")
    wait_until(lambda: any(tag in r["name"] and r["qr"] == "R" for r in rows.rows))
    found = rows.rows
    assert any(tag in r["name"] for r in found)
    assert host in gadget._sockets


def test_malformed_messages_are_rows_with_their_reason_and_the_gadget_goes_on(watched):
    """Each malformed datagram is one row with its reason (docs/config.md, Using trace dns), never a
    query or a response; a real query afterwards is read as usual."""
    gadget, rows, inside = watched
    malformed = {"00": "truncated",                                           # no header
                 "1234010000010000000000000763757400": "truncated",           # a name cut short
                 "12340100000100000000000003616263c00c": "pointer",           # a pointer to itself
                 "12350100000100000000000003616263c00c00010001": "pointer"}   # the same, with its qtype
    send = ("import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "for h in sys.argv[1:]: s.sendto(bytes.fromhex(h), ('127.0.0.1', 53))")
    subprocess.run([*inside, sys.executable, "-c", send, *malformed], check=True)
    tag = uuid.uuid4().hex[:8]
    assert "10.0.0.1" in dig(inside, f"after.{tag}.test")
    wait_until(lambda: any(tag in r["name"] and r["qr"] == "R" for r in rows.rows))
    drained(gadget.stats)
    assert len([r for r in rows.rows if tag in r["name"]]) == 2
    bad = [r for r in rows.rows if r["reason"]]
    assert sorted(r["reason"] for r in bad) == sorted(malformed.values())
    assert {(r["qr"], r["qtype"], r["rcode"], r["name"], r["dstPort"]) for r in bad} == {("", "", "", "", 53)}
    assert gadget.stats.extra["dns_malformed"] == len(malformed)
    assert gadget.stats.decode_errors == 0


def test_client_and_server_namespaces_over_veth_see_each_message_once(dns_gadget, netns, make_netns):
    gadget, rows = dns_gadget
    server_ns = make_netns()
    veth = f"igv{uuid.uuid4().hex[:6]}"
    client, server_side = netns.run, server_ns.run
    subprocess.run(["ip", "link", "add", veth, "netns", netns.name, "type", "veth", "peer", "name", "peer0",
                    "netns", server_ns.name], check=True)
    subprocess.run([*client, "ip", "addr", "add", "10.53.0.1/24", "dev", veth], check=True)
    subprocess.run([*client, "ip", "link", "set", veth, "up"], check=True)
    subprocess.run([*server_side, "ip", "addr", "add", "10.53.0.2/24", "dev", "peer0"], check=True)
    subprocess.run([*server_side, "ip", "link", "set", "peer0", "up"], check=True)
    server = start_server(server_side, "10.53.0.2")
    try:
        for ns in (netns, server_ns):
            gadget.add_netns(ns.inode, ns.path)
        client_ns = netns.inode
        tag = uuid.uuid4().hex[:8]
        for i in range(3):
            assert "10.0.0.1" in dig(client, f"v{i}.{tag}.test", "10.53.0.2")
        mine = lambda rs: [r for r in rs if tag in r["name"]]
        wait_until(lambda: len(mine(rows.rows)) >= 12)
        drained(gadget.stats)
        seen = sorted((r["netns"] == client_ns, r["qr"], r["pktType"]) for r in mine(rows.rows))
        # the client's namespace sends queries and receives responses; the server's the reverse
        assert seen == sorted([(True, "Q", "OUTGOING"), (True, "R", "HOST"),
                               (False, "Q", "HOST"), (False, "R", "OUTGOING")] * 3)
        client_latency = [r["latency"] for r in mine(rows.rows) if r["qr"] == "R" and r["netns"] == client_ns]
        server_latency = [r["latency"] for r in mine(rows.rows) if r["qr"] == "R" and r["netns"] != client_ns]
        assert all(c > s > 0 for c, s in zip(sorted(client_latency), sorted(server_latency)))
    finally:
        server.kill()


def test_long_answers_cut_by_the_capture_or_split_over_tcp_segments_are_read_once(watched):
    """An answer of 200 addresses (3.2 kB): over UDP the capture keeps its first 512 bytes; over TCP
    the server writes it in 400-byte pieces, so most segments continue the message. Each response is
    one row with the header's answer count and the addresses its first bytes hold; nothing is a
    decode error."""
    gadget, rows, inside = watched
    tag = uuid.uuid4().hex[:8]
    for proto, opt in (("udp", "+bufsize=4096"), ("tcp", "+tcp")):
        assert len(dig(inside, f"big.{proto}.{tag}.test", "127.0.0.1", opt).split()) == BIG_ANSWERS
    mine = lambda rs: [r for r in rs if tag in r["name"]]
    wait_until(lambda: len(mine(rows.rows)) >= 4)
    drained(gadget.stats)   # continuation segments have arrived too, and must not have become rows
    found = mine(rows.rows)
    assert sorted((r["proto"], r["qr"]) for r in found) == [("TCP", "Q"), ("TCP", "R"), ("UDP", "Q"), ("UDP", "R")]
    expected = addresses(b"\x03big")
    for r in (r for r in found if r["qr"] == "R"):
        assert (r["rcode"], r["numAnswers"]) == ("NoError", BIG_ANSWERS) and r["latency"] > 0
        got = r["addresses"].split(",")
        assert 15 < len(got) < 40 and got == expected[:len(got)], r
    assert gadget.stats.decode_errors == 0
    assert gadget.stats.extra["dns_tcp_continuations"] >= 8
