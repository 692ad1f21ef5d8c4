"""Which TCP segments start a DNS message.

Over TCP a message is a 2-byte length and the message, and a long one (a big answer, a zone transfer)
spans several segments. Only a segment that starts a message can be decoded: the others would read
as garbage. Per flow we remember where the current message began and where the next one will; a
segment inside that span continues the message, or repeats its start (a retransmission).
"""

from __future__ import annotations

from collections import OrderedDict

SEQ_SPACE = 1 << 32
MAX_FLOWS = 4096   # flows that went quiet are forgotten oldest first


class TcpFraming:
    def __init__(self, max_flows: int = MAX_FLOWS) -> None:
        self._flows: OrderedDict[tuple, tuple[int, int]] = OrderedDict()   # flow -> (start seq, span)
        self._max = max_flows
        self.continuations = 0   # segments skipped as the middle of a message
        self.retransmissions = 0

    def starts_message(self, flow: tuple, seq: int, length: int) -> bool:
        """Whether the segment at `seq` starts a message of `length` bytes (its prefix's value)."""
        current = self._flows.get(flow)
        if current is not None:
            start, span = current
            self._flows.move_to_end(flow)   # in use
            offset = (seq - start) % SEQ_SPACE   # sequence numbers wrap
            if offset == 0:
                self.retransmissions += 1
                return False
            if offset < span:
                self.continuations += 1
                return False
        if length >= 0:   # else too short to start one: the caller counts it as malformed
            self._flows[flow] = (seq, 2 + length)
            self._flows.move_to_end(flow)
            if len(self._flows) > self._max:
                self._flows.popitem(last=False)
        return True
