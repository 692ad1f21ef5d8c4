"""C text for the comparisons the generated code makes, each exactly as Python compares the row.

Values are held as s64 (signed kernel types) or u64 (unsigned ones), as the rows hold Python ints
of the same value; a constant beyond that range gives the answer Python would give for every value
(`uid > -1` is always true), never a C conversion's.
"""

from __future__ import annotations

import math

S64 = (-(1 << 63), (1 << 63) - 1)
U64 = (0, (1 << 64) - 1)

_ABOVE = {"=": False, "<": True, "<=": True, ">": False, ">=": False}   # the constant is above every value
_BELOW = {"=": False, "<": False, "<=": False, ">": True, ">=": True}   # ... below every value


def literal(value: int, signed: bool) -> str:
    if signed:
        return f"({value + 1}LL - 1)" if value == S64[0] else f"{value}LL"
    return f"{value}ULL"


def int_compare(cell: str, signed: bool, op: str, value: int) -> str:
    """`cell op value` as C, for a cell holding an s64 (signed) or u64."""
    low, high = S64 if signed else U64
    if value < low:
        return "1" if _BELOW[op] else "0"
    if value > high:
        return "1" if _ABOVE[op] else "0"
    return f"({cell} {'==' if op == '=' else op} {literal(value, signed)})"


def string_equals(cell: str, size: int, text: str) -> str:
    """`cell`, a NUL-padded char[size] held in u64 words (little-endian, as the map keys are read),
    read as text up to its first NUL, equals `text`: the bytes of `text` and its NUL, a word at a
    time, each word masked to those bytes (what follows the NUL is never read)."""
    raw = text.encode("utf-8")
    if b"\0" in raw or len(raw) > size:
        return "0"   # a row's text never holds a NUL, nor more than the array
    wanted = (raw + b"\0")[:size]
    terms = []
    for start in range(0, len(wanted), 8):
        chunk = wanted[start:start + 8]
        value = int.from_bytes(chunk, "little")
        word = f"{cell}[{start // 8}]"
        if len(chunk) < 8:
            word = f"({word} & {(1 << 8 * len(chunk)) - 1}ULL)"
        terms.append(f"({word} == {value}ULL)")
    return "(" + " && ".join(terms) + ")"


def bucket_index(cell: str, signed: bool, bounds: tuple[float, ...], out: str) -> str:
    """Statements setting `out` to the bucket of `cell`: the first i with cell <= bounds[i], else
    len(bounds) (+Inf), as bisect_left places it. For an integer, `v <= b` is `v <= floor(b)`."""
    floors = [math.floor(b) for b in bounds]
    low, high = S64 if signed else U64

    def at_most(i: int) -> str:
        floor = floors[i]
        if floor >= high:
            return "1"
        if floor < low:
            return "0"
        return f"{cell} <= {literal(floor, signed)}"

    def tree(lo: int, hi: int) -> str:
        if lo == hi:
            return f"{out} = {lo};"
        mid = (lo + hi) // 2
        return f"if ({at_most(mid)}) {{ {tree(lo, mid)} }} else {{ {tree(mid + 1, hi)} }}"

    return tree(0, len(floors))
