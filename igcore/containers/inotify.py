"""Watch the runtimes' state directories with inotify (libc through ctypes, no extra dependency).

A runtime writes <root>/<id>/state.json (containerd: <root>/<namespace>/<id>/state.json) when it
creates a container, before the container's process runs; a watch on the root and on each of its
directories makes the new container known within milliseconds. A root that does not exist yet
(runc creates /run/runc on its first run) is waited for through its nearest existing parent.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import struct
import threading
from typing import Callable

log = logging.getLogger("igcore.containers")

IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO = 0x2, 0x8, 0x40, 0x80
IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED, IN_ONLYDIR, IN_ISDIR = 0x4000, 0x8000, 0x01000000, 0x40000000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC

_TREE_MASK = (IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
              | IN_MOVE_SELF | IN_ONLYDIR)
_PARENT_MASK = IN_CREATE | IN_MOVED_TO | IN_ONLYDIR
_EVENT = struct.Struct("iIII")


class InotifyUnavailable(OSError):
    pass


class _Inotify:
    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            errno = ctypes.get_errno()
            raise InotifyUnavailable(errno, f"inotify_init1: {os.strerror(errno)}")

    def add(self, path: str, mask: int) -> int:
        """The watch descriptor, or -1 if the path is gone."""
        return self._libc.inotify_add_watch(self.fd, os.fsencode(path), ctypes.c_uint32(mask))

    def remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)

    def read(self) -> list[tuple[int, int, str]]:
        """Pending events as (wd, mask, name)."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        out, pos = [], 0
        while pos + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
            pos += _EVENT.size
            name = data[pos:pos + length].rstrip(b"\0").decode(errors="replace")
            pos += length
            out.append((wd, mask, name))
        return out

    def close(self) -> None:
        os.close(self.fd)


class StateDirWatcher:
    """Calls `on_change()` (from its own thread) whenever something changes below `roots`.

    `roots` maps each root to how many directory levels below it hold containers (1: <root>/<id>,
    2: containerd's <root>/<namespace>/<id>); those directories are watched too, since state.json
    is written into a container's directory after the directory itself is created.
    """

    def __init__(self, roots: dict[str, int], on_change: Callable[[], None]) -> None:
        self.roots = {os.path.normpath(r): depth for r, depth in roots.items()}
        self.on_change = on_change
        self._inotify = _Inotify()
        self._watches: dict[str, int] = {}   # path -> wd
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._sync()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ig-state-dirs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._inotify.close()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def watched(self) -> list[str]:
        return sorted(self._watches)

    def _wanted(self) -> dict[str, int]:
        """Every directory to watch now, with its mask."""
        wanted: dict[str, int] = {}
        for root, depth in self.roots.items():
            if not os.path.isdir(root):
                parent = os.path.dirname(root)
                while parent != os.path.dirname(parent) and not os.path.isdir(parent):
                    parent = os.path.dirname(parent)
                wanted.setdefault(parent, _PARENT_MASK)
                continue
            level = [root]
            for i in range(depth + 1):
                below: list[str] = []
                for path in level:
                    wanted[path] = _TREE_MASK
                    if i == depth:
                        continue
                    try:
                        below.extend(e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False))
                    except OSError:
                        pass
                level = below
        return wanted

    def _sync(self) -> None:
        wanted = self._wanted()
        for path, wd in list(self._watches.items()):
            if path not in wanted:
                self._inotify.remove(wd)
                del self._watches[path]
        for path, mask in wanted.items():
            if path not in self._watches:
                wd = self._inotify.add(path, mask)
                if wd >= 0:
                    self._watches[path] = wd

    def _loop(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self._inotify.fd, self._stop_r], [], [])
            except OSError:
                return
            if self._stop_r in ready:
                return
            events = self._inotify.read()
            if any(mask & IN_IGNORED for _, mask, _ in events):
                gone = {wd for wd, mask, _ in events if mask & IN_IGNORED}
                self._watches = {p: wd for p, wd in self._watches.items() if wd not in gone}
            if any(mask & (IN_ISDIR | IN_IGNORED | IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF)
                   for _, mask, _ in events):
                try:
                    self._sync()   # new container directories (and roots that appeared) get watches first
                except OSError as exc:
                    log.warning("watching state directories: %s", exc)
            if events:
                self.on_change()
