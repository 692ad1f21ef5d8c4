"""The text ig compiles for a gadget: its program with the core's ig_emit.h inlined."""

from __future__ import annotations

from pathlib import Path

include_dir = str(Path(__file__).resolve().parent)

_EMIT_INCLUDE = '#include "ig_emit.h"'


def with_transport(text: str, generated: str = "") -> str:
    """Inline ig_emit.h where the program includes it (or at the top), after `generated` (the C of
    the metrics aggregated in the kernel, which defines IG_KERNEL_METRICS_UPDATE and its maps).

    bcc rewrites map calls such as `ig_events.ringbuf_output(...)` only in the main source file, so
    the header must be part of the program text, not an #include that clang resolves.
    """
    header = generated + "".join((Path(include_dir) / name).read_text() for name in ("ig_helpers.h", "ig_emit.h"))
    if _EMIT_INCLUDE in text:
        return text.replace(_EMIT_INCLUDE, header, 1)
    return header + text
