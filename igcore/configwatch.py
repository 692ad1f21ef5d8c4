"""Follow a config file or a mounted ConfigMap directory, and report the config in force.

A ConfigMap mounted as a directory (never with subPath, which the kubelet does not update) holds
`config.yaml -> ..data/config.yaml` and `..data -> ..2026_11_25_20_00_00.123`; the kubelet's atomic
writer makes a new timestamped directory, points `..data_tmp` at it, renames `..data_tmp` over
`..data` and removes the old directory. So the DIRECTORY is watched with inotify (the file's own
inode never changes), and a slow poll of the `..data` target and of the content's sha256 catches
what inotify may miss (a watch set up late, an overflowed queue, a file system without events).
Every change found is handed to the same reload path as SIGHUP.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import INLINE_ORIGIN, Config, load_config_text, read_config_file
from .errors import ConfigError
from .health import loop_errors

log = logging.getLogger("igcore.config")

CONFIG_KEY = "config.yaml"  # the ConfigMap key, and the file read in a config directory
DATA_LINK = "..data"
_SETTLE_SECONDS = 0.2  # one atomic swap is four events: read the directory once they are all in


def config_path(source: str) -> Path | None:
    """The file behind `--config @PATH` (`PATH/config.yaml` when PATH is a directory); None for inline YAML."""
    if not source.startswith("@") or len(source) == 1:
        return None
    path = Path(source[1:])
    return path / CONFIG_KEY if path.is_dir() else path


@dataclass(frozen=True)
class Fingerprint:
    data_target: str | None  # where `..data` points, in a ConfigMap directory
    sha256: str | None       # of the file's bytes; None when there is no file


def fingerprint(path: Path) -> Fingerprint:
    try:
        target = os.readlink(path.parent / DATA_LINK)
    except OSError:
        target = None
    try:   # bounded: a FIFO or a device in the config's place is refused, never read
        digest = hashlib.sha256(read_config_file(str(path))).hexdigest()
    except ConfigError:
        digest = None
    return Fingerprint(target, digest)


class ConfigStatus:
    """What Prometheus and Alertmanager expose about their own config, under ig's names."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.successful = True
        self.success_timestamp = 0.0
        self.sha256: str | None = None  # of the config in force; None while there is none

    def succeeded(self, sha256: str | None) -> None:
        with self._lock:
            self.successful, self.success_timestamp, self.sha256 = True, time.time(), sha256

    def failed(self) -> None:
        with self._lock:
            self.successful = False

    def collect(self):
        with self._lock:
            successful, stamp, sha = self.successful, self.success_timestamp, self.sha256
        from .collector import self_families  # here, not at the top: kubectl-gadget needs no metrics code

        ok, when, info = self_families("ig_config_last_reload_successful",
                                       "ig_config_last_reload_success_timestamp_seconds", "ig_config_info")
        ok.add_metric([], 1 if successful else 0)
        when.add_metric([], stamp)
        if sha is not None:
            info.add_metric([sha], 1)
        return [ok, when, info]


class ConfigFollower:
    """Loads the config of `--config` (`@file` or inline YAML) for the engine, at start and on reload.

    Following a file (`follow=True`), a missing file means no metrics yet and an invalid one at
    start is reported and skipped, so an agent keeps serving its own metrics whatever it was given.
    """

    def __init__(self, source: str, catalog, status: ConfigStatus, follow: bool = False) -> None:
        self.source, self.catalog, self.status, self.follow = source, catalog, status, follow
        self.path = config_path(source)
        self.loaded: str | None = None  # sha256 of the text last read, whether it was valid or not

    def empty(self) -> Config:
        return Config(metrics_name="", metrics=(), origin=str(self.path))

    def first(self) -> Config:
        """The config to start with; without `follow`, any problem is a ConfigError."""
        if not self.follow:
            config = self.read()
            if config is None:
                raise ConfigError(f"{self.path}: cannot read the config file: no such file")
            return config
        try:
            config = self.read()
        except ConfigError as exc:
            log.error("%s; serving ig's own metrics only until a valid config arrives", exc, extra=exc.fields)
            return self.empty()
        if config is None:
            log.warning("no config at %s yet: serving ig's own metrics only, waiting for one", self.path)
            return self.empty()
        return config

    def read(self) -> Config | None:
        """The config now in force in the source (None: no file), recording the outcome in the status."""
        if self.path is None:
            data, origin = self.source.encode(), INLINE_ORIGIN
        else:
            origin = str(self.path)
            if not os.path.lexists(self.path):
                self.loaded = None
                self.status.succeeded(None)
                return None
            try:
                data = read_config_file(origin)   # a regular file of at most 1 MiB, else one line
            except ConfigError:
                self.status.failed()
                raise
        self.loaded = hashlib.sha256(data).hexdigest()
        try:
            config = load_config_text(data.decode("utf-8"), origin, self.catalog)
        except UnicodeDecodeError:
            self.status.failed()
            raise ConfigError(f"{origin}: cannot read the config file: it is not UTF-8 text") from None
        except ConfigError:
            self.status.failed()
            raise
        self.status.succeeded(self.loaded)
        return config

    def reload(self, engine) -> str:
        """Swap the engine to the source's config; says what happened. Raises ConfigError, old config kept."""
        config = self.read()
        if config is None:
            engine.reload(self.empty())
            return f"Config removed: serving ig's own metrics only, waiting for one at {self.path}."
        try:
            engine.reload(config)
        except Exception:
            self.status.failed()
            raise
        return f"Config reloaded ({len(config.metrics)} metric(s), sha256 {(self.loaded or '')[:12]})."


class ConfigWatcher:
    """Calls `on_change()` (from its own thread) when the file's fingerprint differs from the last seen.

    Wakes on inotify events of the file's directory and every `poll_interval` seconds in any case.
    """

    def __init__(self, path: Path, seen: Fingerprint, on_change: Callable[[], None], poll_interval: float = 10.0,
                 inotify: bool = True) -> None:
        """`seen`: the fingerprint taken before the config in force was read, so that a change made
        while the engine started (bcc compiles for seconds) is found by the first check."""
        self.path, self.seen, self.on_change, self.poll_interval = path, seen, on_change, poll_interval
        self._inotify = None
        if inotify:
            # imported here: `ig prometheus --check` must not import the container code
            from .containers.inotify import (IN_CLOSE_WRITE, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_MODIFY,
                                             IN_MOVE_SELF, IN_MOVED_FROM, IN_MOVED_TO, IN_ONLYDIR,
                                             InotifyUnavailable, _Inotify)
            mask = (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY
                    | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
            try:
                self._inotify = _Inotify()
                if self._inotify.add(str(path.parent), mask) < 0:
                    log.warning("cannot watch %s with inotify; polling every %g s", path.parent, poll_interval)
                    self._close_inotify()
            except InotifyUnavailable as exc:
                log.warning("%s; polling %s every %g s", exc, path.parent, poll_interval)
                self._inotify = None
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ig-config-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_inotify()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _close_inotify(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def _loop(self) -> None:
        fds = [self._stop_r] + ([self._inotify.fd] if self._inotify else [])
        ready: list = []  # the first check runs at once
        while True:
            try:
                if ready:
                    time.sleep(_SETTLE_SECONDS)
                    if self._inotify is not None:   # the only fd but the stop pipe's
                        self._inotify.read()
                self.check()
                ready, _, _ = select.select(fds, [], [], self.poll_interval)
                if self._stop_r in ready:
                    return
            except Exception as exc:  # a failing check must not end the watch
                loop_errors.record("config-watch", exc)
                ready = []
                time.sleep(1)

    def check(self) -> bool:
        """Compare the fingerprint with the last seen one; call on_change() if it moved."""
        now = fingerprint(self.path)
        if now == self.seen:
            return False
        self.seen = now
        self.on_change()
        return True
