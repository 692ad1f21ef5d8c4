"""The web config as it is now (re-read when a file changes) and basic auth against its bcrypt hashes."""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import hashlib
import logging
import os
import ssl
import threading
from collections import Counter, OrderedDict
from pathlib import Path

from .errors import ConfigError
from .webconfig import WebConfig, load_web_config

log = logging.getLogger("igcore.web")


def _stamp(paths: tuple[Path, ...]) -> tuple:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


class WebConfigWatcher:
    """Checks the files' stat on every use, the way the exporter-toolkit re-reads its file on every
    request: a rotated certificate is served from the next connection on, without a restart. A
    change that does not load (a half-written certificate, a typo) keeps the previous config."""

    def __init__(self, config: WebConfig) -> None:
        self._config = config
        self._context = config.tls.context() if config.tls else None
        self._stamp = _stamp(config.files())
        self._lock = threading.Lock()
        self.reloads: Counter[str] = Counter()

    def current(self) -> tuple[WebConfig, ssl.SSLContext | None]:
        if _stamp(self._config.files()) != self._stamp:
            with self._lock:
                self._reload()
        return self._config, self._context

    def _reload(self) -> None:
        stamp = _stamp(self._config.files())
        if stamp == self._stamp:
            return
        try:
            config = load_web_config(self._config.path)
            context = config.tls.context() if config.tls else None
        except ConfigError as exc:
            self._stamp = stamp  # retry when a file changes again, not on every request
            self.reloads["failure"] += 1
            log.error("web config not reloaded, the previous one stays in force: %s", exc)
            return
        self._config, self._context = config, context
        self._stamp = _stamp(config.files())
        self.reloads["success"] += 1
        log.info("web config reloaded from %s", config.path)


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes. A bcrypt check costs tens of
    milliseconds, so checks run on a small pool of their own (never on the threads that build
    scrapes) with a bounded queue, and answers are remembered by a digest of user, hash and
    password (never the password itself). Accepted and refused answers are kept in two
    least-recently-used caches, so that wrong passwords, however many, never push out the good
    ones. An unknown user is checked against a fixed hash so that timing does not tell which
    users exist."""

    CHECK_THREADS = 2
    MAX_QUEUED_CHECKS = 32
    ACCEPTED_CACHE_SIZE = 100
    REFUSED_CACHE_SIZE = 1000

    def __init__(self) -> None:
        self._accepted = _LeastRecentlyUsed(self.ACCEPTED_CACHE_SIZE)
        self._refused = _LeastRecentlyUsed(self.REFUSED_CACHE_SIZE)
        self._pool = concurrent.futures.ThreadPoolExecutor(self.CHECK_THREADS, thread_name_prefix="ig-bcrypt")
        self._queued = threading.BoundedSemaphore(self.MAX_QUEUED_CHECKS)
        self._fake_hash: bytes | None = None

    def cached(self, users: dict[str, bytes], authorization: str | None) -> bool | None:
        """The answer if it needs no bcrypt check (no users, bad header, or seen before), else None."""
        if not users:
            return True
        attempt = self._attempt(users, authorization)
        if attempt is None:
            return False
        key = attempt[0]
        if self._accepted.get(key):
            return True
        return False if self._refused.get(key) else None

    def submit(self, users: dict[str, bytes], authorization: str | None) -> concurrent.futures.Future | None:
        """The answer to come from the bcrypt pool, or None when MAX_QUEUED_CHECKS checks wait already."""
        if not self._queued.acquire(blocking=False):
            return None
        try:
            future = self._pool.submit(self.allowed, users, authorization)
        except RuntimeError:  # the pool was shut down: the server stops
            self._queued.release()
            raise
        future.add_done_callback(lambda _: self._queued.release())
        return future

    def allowed(self, users: dict[str, bytes], authorization: str | None) -> bool:
        """The answer, with a bcrypt check if needed (slow: call it off the event loop)."""
        answer = self.cached(users, authorization)
        if answer is not None:
            return answer
        key, hashed, password = self._attempt(users, authorization)
        import bcrypt

        try:
            answer = bcrypt.checkpw(password, hashed or self._fake()) and hashed is not None
        except ValueError:
            answer = False
        (self._accepted if answer else self._refused).put(key)
        return answer

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _attempt(users: dict[str, bytes], authorization: str | None):
        """(cache key, the user's hash or None for an unknown user, password), or None for a bad header."""
        credentials = _parse_basic(authorization)
        if credentials is None:
            return None
        user, password = credentials
        hashed = users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), hashed or b"", password))).digest()
        return key, hashed, password

    def _fake(self) -> bytes:
        if self._fake_hash is None:
            import bcrypt

            self._fake_hash = bcrypt.hashpw(b"not a password of anyone", bcrypt.gensalt(10))
        return self._fake_hash


class _LeastRecentlyUsed:
    """A bounded set of keys (thread-safe): a hit makes a key the last to go."""

    def __init__(self, size: int) -> None:
        self._keys: OrderedDict[bytes, None] = OrderedDict()
        self._size, self._lock = size, threading.Lock()

    def get(self, key: bytes) -> bool:
        with self._lock:
            if key not in self._keys:
                return False
            self._keys.move_to_end(key)
            return True

    def put(self, key: bytes) -> None:
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)


def _parse_basic(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", "replace"), password
