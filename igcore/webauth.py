"""The web config as it is now (re-read when a file changes) and basic auth against its bcrypt hashes."""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import hashlib
import logging
import queue
import ssl
import threading
from collections import Counter, OrderedDict
from typing import NamedTuple

from .errors import ConfigError, describe
from .webconfig import WebConfig, load_web_config, stamp_of

log = logging.getLogger("igcore.web")


class WebState(NamedTuple):
    """What a request is checked against: the file as it is now, or nothing (config None), and
    then every request fails closed."""
    config: WebConfig | None
    context: ssl.SSLContext | None = None


FAIL_CLOSED = WebState(None)


class WebConfigWatcher:
    """The web config as it is now, as the exporter-toolkit applies it (docs/security.md): the
    files' stat is compared on every request and new connection, and a changed file is read
    again. A file that cannot be applied (an invalid edit, a certificate that does not load,
    TLS removed from a port that started with it or added to one that started without) makes
    every request fail closed until it changes again; it never falls back to the previous file.

    Every file access runs on a thread of its own, never on the event loop, and a check that
    takes longer than TIME_LIMIT fails closed (a hung file system must not hold the port)."""

    TIME_LIMIT = 2.0

    def __init__(self, config: WebConfig) -> None:
        self.path = config.path
        self.tls = config.tls is not None  # what the port speaks, fixed until a restart
        self._state = WebState(config, config.context)
        self._stamps = config.stamps
        self.reloads: Counter[str] = Counter()  # success, failure (cannot be applied), error (a bug), timeout
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: concurrent.futures.Future | None = None
        self._stalled = False  # a check overran TIME_LIMIT and none has completed since
        threading.Thread(target=self._work, name="ig-web-config", daemon=True).start()

    async def current(self) -> WebState:
        """The state for a request arriving now. A check not yet begun is shared: it reads the
        files after this request arrived, which is all "now" asks."""
        pending = self._pending
        if pending is None or pending.running() or pending.done():
            pending = self._pending = concurrent.futures.Future()
            self._queue.put(pending)
        done, _ = await asyncio.wait({asyncio.wrap_future(pending)}, timeout=self.TIME_LIMIT)
        if done:
            self._stalled = False
            return done.pop().result()
        if not self._stalled:  # one count and one line until a check completes again
            self._stalled = True
            self.reloads["timeout"] += 1
            log.error("web config: reading %s and the files it names took longer than %g s; "
                      "requests fail until it completes", self.path, self.TIME_LIMIT)
        return FAIL_CLOSED

    def _work(self) -> None:
        while True:
            pending = self._queue.get()
            if pending.set_running_or_notify_cancel():
                try:
                    pending.set_result(self.check())
                except BaseException:  # whatever it was, this request fails closed and the thread lives on
                    pending.set_result(FAIL_CLOSED)

    def check(self) -> WebState:
        """Reload if a file changed since it was read; never raises (called off the event loop)."""
        if all(stamp_of(path) == stamp for path, stamp in self._stamps):
            return self._state
        stamps: list = []
        try:
            config = load_web_config(self.path, stamps)
            if self.tls != (config.tls is not None):
                raise ConfigError(TLS_SWITCH[self.tls].format(path=self.path))
            state, result = WebState(config, config.context), "success"
            (log.warning if self._state is FAIL_CLOSED else log.info)("web config reloaded from %s", self.path)
        except Exception as exc:  # a bug in the reload must fail closed, not open
            state, result = FAIL_CLOSED, "failure" if isinstance(exc, ConfigError) else "error"
            log.error("web config cannot be applied, every request fails until the file changes: %s", describe(exc))
        # looked at again when one of these files changes
        self._state, self._stamps = state, tuple(stamps) or ((self.path, stamp_of(self.path)),)
        self.reloads[result] += 1
        return state


TLS_SWITCH = {
    True: "tls_server_config was removed from {path}, but this port started with TLS and stays TLS "
          "until ig restarts: handshakes and requests fail",
    False: "tls_server_config was added to {path}, but this port started as plain HTTP and serves TLS "
           "only after ig restarts: requests fail",
}


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
