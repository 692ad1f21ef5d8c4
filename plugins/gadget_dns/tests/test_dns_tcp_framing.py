"""Which TCP segments start a DNS message (no kernel needed; the kernel test is in test_dns_gadget)."""

from __future__ import annotations

from ig_gadget_dns.tcp_framing import TcpFraming

FLOW = (0, "10.0.0.9", "10.0.0.53", 40000, 53)


def test_segments_inside_a_message_continue_it_and_the_next_message_starts_after_it():
    framing = TcpFraming()
    assert framing.starts_message(FLOW, 1000, 998)        # 2 + 998 bytes: 1000 .. 1999
    assert not framing.starts_message(FLOW, 1400, 1234)   # bytes of the message that read as a prefix
    assert not framing.starts_message(FLOW, 1999, 7)
    assert framing.starts_message(FLOW, 2000, 50)
    assert framing.continuations == 2


def test_a_repeated_first_segment_is_a_retransmission():
    framing = TcpFraming()
    assert framing.starts_message(FLOW, 5, 100)
    assert not framing.starts_message(FLOW, 5, 100)
    assert framing.retransmissions == 1


def test_sequence_numbers_wrap():
    framing = TcpFraming()
    start = (1 << 32) - 10
    assert framing.starts_message(FLOW, start, 98)        # ends past the wrap, at 90
    assert not framing.starts_message(FLOW, 50, 0)
    assert framing.starts_message(FLOW, 90, 30)


def test_flows_are_apart_and_bounded():
    framing = TcpFraming(max_flows=2)
    other = (0, "10.0.0.53", "10.0.0.9", 53, 40000)        # the other direction is its own flow
    assert framing.starts_message(FLOW, 100, 500)
    assert framing.starts_message(other, 150, 500)
    assert not framing.starts_message(FLOW, 200, 1)         # FLOW is in use again
    third = (1, *FLOW[1:])                                   # the same addresses in another namespace
    assert framing.starts_message(third, 200, 500)           # forgets the flow used longest ago
    assert not framing.starts_message(FLOW, 300, 1)
    assert framing.starts_message(other, 300, 1)             # other was forgotten: taken as a start


def test_a_segment_too_short_for_a_prefix_is_left_to_the_caller():
    framing = TcpFraming()
    assert framing.starts_message(FLOW, 100, -1)
    assert framing.starts_message(FLOW, 101, 10)             # nothing was remembered from it
