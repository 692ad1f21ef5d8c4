"""The few API server reads of the pod watch: a bounded JSON GET and a bounded stream of JSON lines.

The connection (server, TLS, credentials) comes from lightkube's kubeconfig handling, as for
`kubectl gadget` (igcore/kubectl/cluster.py): a kubeconfig file with `--kubeconfig`, else the pod's
service account. Every answer is hostile: bodies and lines are read up to a size, never whole.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Iterator

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
MAX_BODY = 64 << 20      # a page of a list (500 pods) or one object
MAX_LINE = 4 << 20       # one watch event
READ_TIMEOUT = 10.0      # a list page or an owner; a watch waits longer (its server-side timeout)


class ApiError(Exception):
    """The API server answered with an error status (or an ERROR event carrying one)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"HTTP {code}: {message[:300]}")
        self.code = code


class TransportError(Exception):
    """The API server could not be reached, or its answer was cut or not JSON."""


def in_a_pod() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


class KubeApi:
    def __init__(self, kubeconfig: str | None, service_account: str = SERVICE_ACCOUNT) -> None:
        """A client for `kubeconfig` (a path), else the pod's service account; ConfigError (from
        igcore.errors) when neither can be used."""
        import httpx2
        from lightkube import KubeConfig
        from lightkube.config.client_adapter import Client, ConnectionParams
        from lightkube.core.exceptions import ConfigError as KubeConfigError   # raised below too

        from ...errors import ConfigError

        self._httpx = httpx2
        try:
            config = (KubeConfig.from_file(kubeconfig) if kubeconfig
                      else KubeConfig.from_service_account(service_account)).get()
            if config is None:
                raise KubeConfigError("it has no current context")
            self.server = config.cluster.server
            self._client = Client(config, ConnectionParams(timeout=httpx2.Timeout(READ_TIMEOUT), trust_env=False))
        except Exception as exc:   # a hostile file fails in many ways (YAML, its shape, certificates): one line
            why = " ".join(str(exc).split())[:300] or type(exc).__name__
            source = f"--kubeconfig {kubeconfig}" if kubeconfig else f"the service account token in {service_account}"
            raise ConfigError(f"cannot use {source} to reach the API server: {why}") from None

    def get(self, path: str, params: dict | None = None) -> dict:
        """One object or list page as JSON; ApiError for an error status, TransportError otherwise."""
        with self._stream(path, params, READ_TIMEOUT) as chunks:
            body = bytearray()
            for chunk in chunks:
                body += chunk
                if len(body) > MAX_BODY:
                    raise TransportError(f"{path}: answer larger than {MAX_BODY} bytes")
        return _json(bytes(body), path)

    def watch(self, path: str, params: dict, timeout: float) -> Iterator[dict]:
        """The events of a watch, one JSON object per line, until the server ends the stream."""
        with self._stream(path, params, timeout) as chunks:
            pending = b""
            for chunk in chunks:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if len(pending) > MAX_LINE:
                    raise TransportError(f"{path}: a watch event longer than {MAX_LINE} bytes")
                for line in lines:
                    if line.strip():
                        yield _json(line, path)

    @contextmanager
    def _stream(self, path: str, params: dict | None, timeout: float):
        """The body's chunks of a GET answered 200 (`timeout`: seconds a read may wait); the
        client's errors, also those of a stream that breaks while read, as TransportError."""
        httpx2 = self._httpx
        try:
            with self._client.stream("GET", path, params=params,
                                     timeout=httpx2.Timeout(READ_TIMEOUT, read=timeout)) as response:
                if response.status_code != 200:
                    text = b"".join(_bounded(response, 65536)).decode(errors="replace")
                    raise ApiError(response.status_code, _status_message(text))
                yield response.iter_raw()
        except httpx2.HTTPError as exc:
            raise TransportError(f"the API server at {self.server}: {exc}") from None

    def close(self) -> None:
        self._client.close()


def _bounded(response, limit: int) -> Iterator[bytes]:
    seen = 0
    for chunk in response.iter_raw():
        yield chunk[:limit - seen]
        seen += len(chunk)
        if seen >= limit:
            return


def _json(data: bytes, path: str):
    try:
        return json.loads(data)
    except ValueError:
        raise TransportError(f"{path}: the API server's answer is not JSON") from None


def _status_message(text: str) -> str:
    """The message of a Status object, else the text itself."""
    try:
        found = json.loads(text)
    except ValueError:
        return text.strip()
    message = found.get("message") if isinstance(found, dict) else None
    return message if isinstance(message, str) else text.strip()
