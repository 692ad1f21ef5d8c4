"""ig's log lines: one event, one line, in the format its reader asks for (docs/config.md, Logs).

`text` is for people: on a terminal rich's layout (wrapped at the terminal's width), elsewhere one
plain line per event, neither wrapped nor padded, so journald and `kubectl logs` keep each event
whole. `logfmt` and `json` are for log pipelines: time, level, logger, message, and the fields a
message names (`gadget`, `metric`, `reason`, passed as `extra=` where it is logged).

A message may carry text from a config, a plugin or a container runtime: every format escapes its
control characters, so no message can end a line early or forge one of its own.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from enum import Enum
from typing import TextIO

from .quoting import one_line


class LogFormat(str, Enum):
    text = "text"
    logfmt = "logfmt"
    json = "json"


# The fields a record may carry besides its message, in the order they are written.
FIELDS = ("gadget", "metric", "reason")

_format = LogFormat.text


def structured() -> bool:
    """True when logs go to a machine (logfmt or json): ig's status lines are records then too."""
    return _format is not LogFormat.text


def setup(fmt: LogFormat, verbose: bool, stream: TextIO | None = None, console=None) -> None:
    """Send every record of the process to `stream` (stderr) in `fmt`; `console`: rich's, for
    text on a terminal."""
    global _format
    _format = LogFormat(fmt)
    stream = stream or sys.stderr
    if _format is LogFormat.text and console is not None and console.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=console, show_path=False, show_time=False)
        handler.setFormatter(_TerminalFormatter())
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(_FORMATTERS[_format]())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler], force=True)
    if structured():
        logging.captureWarnings(True)   # Python's warnings are lines of the same format, not raw text


def announce(message: str, level: int = logging.INFO, logger: str = "igcore", **fields) -> None:
    """A record that is shown whatever the level set (ig's status lines and its final error)."""
    target = logging.getLogger(logger)
    target.handle(target.makeRecord(target.name, level, "(ig)", 0, message, (), None,
                                    extra={k: v for k, v in fields.items() if v is not None}))


def _utc(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, str]:
    """What a structured line holds, in order: time, level, logger, message, then the fields."""
    values = {"time": _utc(record), "level": record.levelname.lower(), "logger": record.name,
              "message": record.getMessage()}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            values[name] = str(value)
    if record.exc_info:
        values["exception"] = formatter.formatException(record.exc_info)
    return values


class _TextFormatter(logging.Formatter):
    """`LEVEL    message` (the level padded as rich pads it on a terminal), one line."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname:<8} {one_line(record.getMessage())}"
        if record.exc_info:   # -v: the traceback too, on the same line
            line += " " + one_line(self.formatException(record.exc_info))
        return line


class _TerminalFormatter(logging.Formatter):
    """The message for rich's handler: control characters escaped; rich wraps it for the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        message = one_line(record.getMessage())
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return message


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # ensure_ascii: every character outside ASCII is escaped too, so no reader splits the
        # line at a Unicode line separator
        return json.dumps(_fields(record, self), ensure_ascii=True)


# A logfmt value written bare: no space, quote, `=`, backslash or control character in it.
_BARE = re.compile(r'[^\s"=\\\x00-\x1f\x7f-\x9f\u2028\u2029]+')
_QUOTED_SPECIAL = re.compile(r'[\\"]')


def logfmt_value(value: str) -> str:
    """`value` as logfmt writes it: bare when it can be, else in double quotes with `\\`, `"`
    and control characters escaped."""
    if _BARE.fullmatch(value):
        return value
    return '"' + one_line(_QUOTED_SPECIAL.sub(lambda m: "\\" + m.group(), value)) + '"'


class _LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={logfmt_value(value)}" for key, value in _fields(record, self).items())


_FORMATTERS = {LogFormat.text: _TextFormatter, LogFormat.logfmt: _LogfmtFormatter, LogFormat.json: _JsonFormatter}
