"""Serves a CollectorRegistry on one path (404 elsewhere), with prometheus_client's content negotiation."""

from __future__ import annotations

import socket
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from .errors import ConfigError, RuntimeFailure


def parse_listen_address(address: str) -> tuple[str, int]:
    """`127.0.0.1:2223`, `[::1]:2223`, `:2223` (all IPv4 interfaces) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--metrics-listen-address {address!r} is not HOST:PORT (for example 127.0.0.1:2223)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # scrapes every second would flood the terminal
        pass


def _only_path(app, path: str):
    def routed(environ, start_response):
        if environ.get("PATH_INFO", "") != path:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"Not found. Metrics are served at {path}\n".encode()]
        return app(environ, start_response)

    return routed


class MetricsServer:
    """HTTP server in a background thread; `close()` stops it."""

    def __init__(self, registry: CollectorRegistry, address: str, path: str) -> None:
        if not path.startswith("/"):
            raise ConfigError(f"--metrics-path {path!r} must start with /")
        host, port = parse_listen_address(address)
        server_class = _Server6 if ":" in host else _Server
        try:
            self._httpd = make_server(host, port, _only_path(make_wsgi_app(registry), path),
                                      server_class=server_class, handler_class=_QuietHandler)
        except OSError as exc:
            raise RuntimeFailure(f"cannot listen on {address}: {exc.strerror or exc}") from exc
        self.address = f"{host}:{self._httpd.server_port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="ig-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
