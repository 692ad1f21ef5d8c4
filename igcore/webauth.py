"""The web config as it is now (re-read when a file changes) and basic auth against its bcrypt hashes."""

from __future__ import annotations

import base64
import binascii
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
    milliseconds, so results are cached (by a digest of user, hash and password, never the
    password itself) and checks run one at a time; an unknown user is checked against a fixed
    hash so that timing does not tell which users exist."""

    CACHE_SIZE = 1000

    def __init__(self) -> None:
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()
        self._fake_hash: bytes | None = None

    def cached(self, users: dict[str, bytes], authorization: str | None) -> bool | None:
        """The answer if it needs no bcrypt check (no users, bad header, or seen before), else None."""
        if not users:
            return True
        attempt = self._attempt(users, authorization)
        if attempt is None:
            return False
        with self._cache_lock:
            return self._cache.get(attempt[0])

    def allowed(self, users: dict[str, bytes], authorization: str | None) -> bool:
        """The answer, with a bcrypt check if needed (slow: call it off the event loop)."""
        answer = self.cached(users, authorization)
        if answer is not None:
            return answer
        key, hashed, password, known = self._attempt(users, authorization)
        import bcrypt

        with self._bcrypt_lock:
            try:
                answer = bcrypt.checkpw(password, hashed) and known
            except ValueError:
                answer = False
        with self._cache_lock:
            self._cache[key] = answer
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return answer

    def _attempt(self, users: dict[str, bytes], authorization: str | None):
        credentials = _parse_basic(authorization)
        if credentials is None:
            return None
        user, password = credentials
        hashed = users.get(user)
        known = hashed is not None
        if not known:
            hashed = self._fake()
        key = hashlib.sha256(b"\0".join((user.encode(), hashed, password))).digest()
        return key, hashed, password, known

    def _fake(self) -> bytes:
        if self._fake_hash is None:
            import bcrypt

            self._fake_hash = bcrypt.hashpw(b"not a password of anyone", bcrypt.gensalt(10))
        return self._fake_hash


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
