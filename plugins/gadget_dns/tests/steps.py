"""The kernel reader's steps (dns.bpf.c's dns_advance), step for step, to know exactly which
messages a build of it can read within its bounds (docs/config.md, Using trace dns: "Bounded work
per packet"). It says where messages begin and end, when a reason is found and after how many
steps; the replay test checks every verdict against its own strict parser, so this only decides
which messages are `unparsed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ig_gadget_dns.plugin import BOUNDED_STEPS, LOOP_STEPS

(PREFIX, ID, FLAGS, QD, AN, NS, AR, RECORD, NAME, POINTER, QTYPE, RDLENGTH, SKIP, END) = range(14)
OUT = -1   # the packet has no more bytes
MAX_NAME, HEADER_LEN = 255, 12


@dataclass(frozen=True)
class Bounds:
    """bpf_loop: `steps` per packet. Without: `runs`, the steps to the end of a packet's first
    message (or of the packet), then of a second."""
    steps: int = 0
    runs: tuple[int, ...] = ()


BPF_LOOP = Bounds(steps=LOOP_STEPS)
BOUNDED = Bounds(runs=BOUNDED_STEPS)


@dataclass
class Parse:
    """struct dns_parse, as far as the steps read it."""
    phase: int = PREFIX
    next: int = PREFIX
    need: int = 2
    acc: int = 0
    skip: int = 0
    pos: int = 0
    len: int = 0
    questions: int = 0
    records: int = 0
    question: bool = False
    name_start: int = 0
    name_len: int = 0
    start: int = 0          # where the message begins in the bytes fed (its first byte after a prefix)

    def value(self, phase: int, need: int) -> None:
        self.phase, self.need, self.acc = phase, need, 0

    def skip_to(self, skip: int, next_phase: int) -> None:
        self.skip, self.next = skip, next_phase
        self.phase = SKIP if skip else next_phase

    def name_end(self) -> None:
        if self.question:
            self.value(QTYPE, 2)
        else:
            self.value(RDLENGTH, 2)
            self.skip_to(8, RDLENGTH)


@dataclass
class Walk:
    """One packet's bytes (`data[at:end]`), read into `p`; `rows` gets (reason, message start, length)."""
    data: bytes
    at: int
    end: int
    p: Parse
    tcp: bool
    rows: list = field(default_factory=list)
    done: bool = False

    def advance(self) -> int | str | None:
        """None goes on, OUT stops, a reason ("" for well-formed) ends the message."""
        p = self.p
        if p.phase == RECORD:
            if p.questions:
                p.questions, p.question = p.questions - 1, True
            elif p.records:
                p.records, p.question = p.records - 1, False
            else:
                p.phase = END
                return None
            p.phase, p.name_start, p.name_len = NAME, p.pos, 0
            return None
        if p.phase == END:
            return "" if p.pos == p.len else "trailing"
        if p.phase != PREFIX and p.pos >= p.len:
            return "truncated"
        if self.at >= self.end:
            return OUT
        if p.phase == SKIP:
            n = min(self.end - self.at, p.len - p.pos, p.skip)
            self.at, p.pos, p.skip = self.at + n, p.pos + n, p.skip - n
            if not p.skip:
                p.phase = p.next
            return None
        b = self.data[self.at]
        self.at += 1
        if p.phase != PREFIX:
            p.pos += 1
        if p.phase == NAME:
            if b & 0xC0 == 0xC0:
                p.value(POINTER, 1)
                p.acc = b
                return None
            if b & 0xC0:
                return "label"
            p.name_len += 1 + b
            if p.name_len > MAX_NAME or (b and p.name_len + 1 > MAX_NAME):
                return "long_name"
            if b:
                p.skip_to(b, NAME)
            else:
                p.name_end()
            return None
        p.acc = ((p.acc << 8) | b) & 0xFFFFFFFF
        p.need -= 1
        return None if p.need else self.read_value()

    def read_value(self) -> str | None:
        p, v = self.p, self.p.acc
        if p.phase == PREFIX:
            p.len, p.pos, p.start = v, 0, self.at
            p.value(ID, 2)
        elif p.phase in (ID, FLAGS, AN, NS):
            p.records = v if p.phase == AN else p.records + v if p.phase == NS else p.records
            p.value(p.phase + 1, 2)
        elif p.phase == QD:
            p.questions = v & 0xFFFF
            p.value(AN, 2)
        elif p.phase == AR:
            p.records += v
            p.phase = RECORD
        elif p.phase == POINTER:
            if not HEADER_LEN <= v & 0x3FFF < p.name_start:
                return "pointer"
            p.name_end()
        elif p.phase == QTYPE:
            p.skip_to(2, RECORD)
        elif p.phase == RDLENGTH:
            p.skip_to(v, RECORD)
        return None

    def finish(self, reason: str) -> None:
        p = self.p
        self.rows.append((reason, p.start, p.len))
        if not self.tcp:
            self.done = True
            return
        p.value(PREFIX, 2)
        if p.pos < p.len:
            p.skip_to(p.len - p.pos, PREFIX)

    def run(self, bounds: Bounds) -> bool:
        """The packet's steps within `bounds`: False when they ran out before it ended."""
        if not bounds.runs:
            for _ in range(bounds.steps):
                r = self.advance()
                if r == OUT:
                    return True
                if r is not None:
                    self.finish(r)
                    if self.done:
                        return True
            return False
        for steps in bounds.runs:
            r = None
            for _ in range(steps):
                r = self.advance()
                if r is not None:
                    break
            if r is None:
                return False
            if r == OUT:
                return True
            self.finish(r)
            if self.done or self.at >= self.end:
                return True
        return False


def datagram(msg: bytes, bounds: Bounds) -> str | None:
    """The reason of a UDP message read within `bounds` ("" well-formed), None when unparsed."""
    p = Parse(len=len(msg))
    p.value(ID, 2)
    walk = Walk(msg, 0, len(msg), p, tcp=False)
    if not walk.run(bounds):
        return None
    return walk.rows[0][0] if walk.rows else "truncated"


def stream(segments: list[bytes], bounds: Bounds, fin: bool) -> list[tuple[str, bytes | None]]:
    """The rows of one direction of a TCP connection seen from its SYN, a segment at a time:
    (reason, the message) for each message read, ("unparsed", None) for a segment the reader could
    not follow (the connection is then forgotten: each later one is unparsed too), ("truncated",
    None) when the FIN comes mid-message."""
    data, rows, p, offset = b"".join(segments), [], Parse(), 0
    for segment in segments:
        start, offset = offset, offset + len(segment)
        if p is None:
            rows.append(("unparsed", None))
            continue
        walk = Walk(data, start, offset, p, tcp=True)
        followed = walk.run(bounds)
        rows += [(reason, data[at:at + length]) for reason, at, length in walk.rows]
        if not followed:
            rows.append(("unparsed", None))
            p = None
    if fin and p is not None and (p.phase != PREFIX or p.need != 2):
        rows.append(("truncated", None))
    return rows
