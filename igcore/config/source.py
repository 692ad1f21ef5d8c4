"""Where a config's text comes from: `@path` (a file) or the text itself, bounded in size.

Only regular files are read, and at most MAX_CONFIG_BYTES of them: `/dev/zero` would otherwise be
read until memory runs out, and a FIFO would block the reload (and the signal loop waiting behind
it) forever. The file is opened without blocking and checked on the open descriptor, so it cannot
be swapped for something else between the check and the read.
"""

from __future__ import annotations

import os
import stat

from ..errors import ConfigError

INLINE_ORIGIN = "inline config"

# Kubernetes stores a ConfigMap in at most 1 MiB; no config ig accepts needs to be larger.
MAX_CONFIG_BYTES = 1024 * 1024

_FILE_TYPES = (
    (stat.S_ISDIR, "it is a directory"),
    (stat.S_ISFIFO, "it is a FIFO, not a regular file"),
    (stat.S_ISCHR, "it is a character device, not a regular file"),
    (stat.S_ISBLK, "it is a block device, not a regular file"),
    (stat.S_ISSOCK, "it is a socket, not a regular file"),
)


def read_source(source: str) -> tuple[str, str]:
    """(origin, text): `@path` reads the file; anything else is the text itself."""
    if not source.startswith("@"):
        _check_size(INLINE_ORIGIN, len(source.encode("utf-8", "surrogatepass")))
        return INLINE_ORIGIN, source
    path = source[1:]
    if not path:
        raise ConfigError('config: no file name after "@" (write --config @path/to/config.yaml)')
    data = _read_file(path)
    try:
        return path, data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read the config file: it is not UTF-8 text") from None


def read_config_file(path: str) -> bytes:
    """The bytes of a config file: a regular file of at most MAX_CONFIG_BYTES, else one ConfigError."""
    return _read_file(path)


def _read_file(path: str) -> bytes:
    def fail(reason: str) -> ConfigError:
        return ConfigError(f"{path}: cannot read the config file: {reason}")

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        for test, reason in _FILE_TYPES:
            if test(info.st_mode):
                raise fail(reason)
        if not stat.S_ISREG(info.st_mode):
            raise fail("it is not a regular file")
        _check_size(path, info.st_size)  # refused before a byte is read
        chunks, size = [], 0
        while size <= MAX_CONFIG_BYTES:  # st_size may not be the truth (a file still growing)
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        _check_size(path, size, at_least=size > MAX_CONFIG_BYTES)
        return b"".join(chunks)
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def _check_size(origin: str, size: int, at_least: bool = False) -> None:
    if size > MAX_CONFIG_BYTES:
        more = "more than 1 MiB" if at_least else f"{size / 1024 / 1024:.1f} MiB"
        raise ConfigError(f"{origin}: the config is {more}; the limit is 1 MiB (as for a Kubernetes ConfigMap)")
