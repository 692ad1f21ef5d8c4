"""The metrics endpoint: one path and the health probes (igcore.probes), 404 elsewhere; optional
TLS and basic auth, and bounded in every resource a client can hold.

An asyncio loop in one thread owns every connection, so an idle or slow client costs a
descriptor, not a thread. The port is bound (and listening, with a large backlog) when the object
is made, before the eBPF programs are compiled; connections wait in the backlog until `start()`.
Scrapes that arrive together share a render that starts after all of them arrived
(exposition.SharedRenders). Limits (docs/security.md, "Limits"): a connection count sized from
the descriptor limit (when full, the connection waiting longest on its client, idle or not taking
its answer, is closed for the new one), a time limit for the TLS handshake and for each request
head, an idle time-out for kept-alive connections, a write deadline, a size limit on request heads,
bounded pipelining, and a bound on the bytes of answers in flight. Scrapes are encoded in a small
thread pool, so the loop keeps accepting while one scrape is built; bcrypt checks have their own.
Each request and TLS handshake is checked against the web config as it is now
(webauth.WebConfigWatcher).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import os
import resource
import socket
import termios
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple
from http import HTTPStatus

from .errors import ConfigError, RuntimeFailure
from .exposition import SharedRenders, scrape_key
from .health import loop_errors
from .probes import Probes, route
from .webauth import BasicAuth, WebConfigWatcher, WebState

MAX_HEAD_BYTES = 16 * 1024
RECEIVE_BUFFER_BYTES = 32 * 1024    # requests are small: what a pipelining client can park in ig's socket
SEND_BUFFER_BYTES = 256 * 1024      # the kernel's share of an unread answer (25 MB/s at 10 ms round trip)
WRITE_PIECE_BYTES = 64 * 1024       # a response is handed to the socket in pieces: ig copies at most one per connection
PIPELINED_UNSENT_BYTES = 16 * 1024  # a next request is read only once the answers before it are this close to sent
MAX_PIPELINED = 8                   # requests in a row sent before their predecessor's answer; the last is
                                    # answered with a close
RESPONSES_IN_FLIGHT_BYTES = 32 * 1024 * 1024  # response bodies being written, all connections together
# What a connection may hold in ig's memory: its read buffer and one recv, one piece of a
# response, its objects (docs/security.md, "Limits").
PER_CONNECTION_BYTES = 2 * MAX_HEAD_BYTES + 2 * RECEIVE_BUFFER_BYTES + WRITE_PIECE_BYTES + 32 * 1024
TLS_HANDSHAKE_RECORD = b"\x16"
# A TLS alert record (fatal, internal_error), as Go's TLS server sends when it cannot pick a config.
TLS_INTERNAL_ERROR_ALERT = b"\x15\x03\x03\x00\x02\x02\x50"
PLAIN_HTTP_ON_TLS = (b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
                     b"Client sent an HTTP request to an HTTPS server.\n")


@dataclass(frozen=True)
class HttpOptions:
    max_connections: int = 512
    read_timeout: float = 10.0   # TLS handshake; a request head, from its first byte
    idle_timeout: float = 60.0   # a kept-alive connection between requests
    write_timeout: float = 5.0   # a response write that makes no progress
    backlog: int = 1024          # the kernel caps it at net.core.somaxconn
    scrape_threads: int = 4


def memory_bound(max_connections: int) -> int:
    """The most the endpoint adds to ig's memory with this many connections."""
    return max_connections * PER_CONNECTION_BYTES + RESPONSES_IN_FLIGHT_BYTES


MEMORY_BOUND_BYTES = memory_bound(HttpOptions.max_connections)


def parse_listen_address(address: str) -> tuple[str, int]:
    """`127.0.0.1:2223`, `[::1]:2223`, `:2223` (all IPv4 interfaces) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--metrics-listen-address {address!r} is not HOST:PORT (for example 127.0.0.1:2223)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)


def format_url(host: str, port: int, path: str, tls: bool = False) -> str:
    """IPv6 hosts in brackets, as URLs need them."""
    return f"{'https' if tls else 'http'}://{f'[{host}]' if ':' in host else host}:{port}{path}"


class _Conn:
    """`busy` while ig works on a request (not evictable); `since` is when it began waiting on its
    client (for a request, or to take an answer); `body` is the large response it writes."""

    __slots__ = ("task", "busy", "since", "body")

    def __init__(self, task: asyncio.Task) -> None:
        self.task, self.busy, self.since = task, False, time.monotonic()
        self.body: bytes | None = None


class _ResponsesInFlight:
    """The response bodies connections are writing, counted once however many connections share one."""

    def __init__(self) -> None:
        self._bodies: dict[int, list] = {}  # id -> [body, holders]: the body is kept, so its id stays its own
        self.bytes = 0

    def fits(self, body: bytes) -> bool:
        """Whether holding `body` keeps the total within the bound (always true for the only one)."""
        return not self._bodies or id(body) in self._bodies or self.bytes + len(body) <= RESPONSES_IN_FLIGHT_BYTES

    def hold(self, body: bytes) -> None:
        entry = self._bodies.setdefault(id(body), [body, 0])
        if entry[1] == 0:
            self.bytes += len(body)
        entry[1] += 1

    def release(self, body: bytes) -> None:
        entry = self._bodies[id(body)]
        entry[1] -= 1
        if entry[1] == 0:
            del self._bodies[id(body)]
            self.bytes -= len(body)


class _Close(Exception):
    """End this connection, counted under `reason`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class MetricsServer:
    """Binds at construction (a port in use fails at once), serves from `start()` until `close()`."""

    def __init__(self, registry, address: str, path: str, web: WebConfigWatcher | None = None,
                 options: HttpOptions = HttpOptions(), probes: Probes | None = None) -> None:
        if not path.startswith("/"):
            raise ConfigError(f"--metrics-path {path!r} must start with /")
        host, port = parse_listen_address(address)
        try:
            self._sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                              backlog=options.backlog)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)  # create_server's own text repeats the address
            raise RuntimeFailure(f"cannot listen on {address}: {reason}") from None
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)  # inherited by each connection
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self.host, self.port = host, self._sock.getsockname()[1]
        self.path, self.options, self._registry, self._web = path, options, registry, web
        self._probes = probes  # /healthz and /readyz, answered without basic auth (igcore.probes)
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        # Half the descriptors for clients; the rest for BPF maps, ring buffers, runtime sockets.
        self.max_connections = max(8, min(options.max_connections, soft_limit // 2))
        self.closed: Counter[str] = Counter()
        self.requests: Counter[int] = Counter()
        self._conns: dict[int, _Conn] = {}
        self._auth = BasicAuth()
        self._in_flight = _ResponsesInFlight()
        self._pool = concurrent.futures.ThreadPoolExecutor(options.scrape_threads, thread_name_prefix="ig-scrape")
        self._renders = SharedRenders(registry, self._pool)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def tls(self) -> bool:
        return self._web is not None and self._web.tls

    @property
    def url(self) -> str:
        return format_url(self.host, self.port, self.path, self.tls)

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main(ready)), name="ig-http", daemon=True)
        self._thread.start()
        ready.wait()

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:  # it started
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._auth.close()
        self._sock.close()

    async def _main(self, ready: threading.Event) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        accepting = asyncio.create_task(self._accept_loop())
        ready.set()
        await self._stop.wait()
        accepting.cancel()
        for conn in list(self._conns.values()):
            conn.task.cancel()
        await asyncio.gather(accepting, *(c.task for c in self._conns.values()), return_exceptions=True)

    # -- connections -----------------------------------------------------------------------
    async def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = await asyncio.get_running_loop().sock_accept(self._sock)
            except OSError as exc:  # EMFILE and the like: free a descriptor, then try again
                loop_errors.record("http", exc)
                self._evict_idle()
                await asyncio.sleep(0.1)
                continue
            if len(self._conns) >= self.max_connections and not self._evict_idle():
                self.closed["over_limit"] += 1
                sock.close()
                continue
            task = asyncio.create_task(self._serve(sock))
            self._conns[id(task)] = _Conn(task)

    def _evict_idle(self) -> bool:
        """Close the connection that has waited longest on its client: idle, or not reading its answer."""
        return self._evict_first([c for c in self._conns.values() if not c.busy and not c.task.done()])

    def _make_room(self, body: bytes) -> None:
        """Close the writers that have waited longest on their clients until `body` fits in flight."""
        while not self._in_flight.fits(body) and self._evict_first(
                [c for c in self._conns.values() if c.body is not None and not c.busy and not c.task.done()]):
            pass

    def _evict_first(self, candidates: list[_Conn]) -> bool:
        if not candidates:
            return False
        victim = min(candidates, key=lambda c: c.since)
        self._conns.pop(id(victim.task), None)
        if victim.body is not None:  # its bytes count as freed now, not when its task unwinds
            self._in_flight.release(victim.body)
            victim.body = None
        victim.task.cancel()
        self.closed["evicted"] += 1
        return True

    async def _serve(self, sock: socket.socket) -> None:
        conn_id = id(asyncio.current_task())
        transport, graceful = None, False
        try:
            reader = _Reader(limit=MAX_HEAD_BYTES)
            protocol = asyncio.StreamReaderProtocol(reader)
            context = None
            if self._web is not None and self.tls:  # the web config at the client's hello, as the exporter-toolkit
                if not await self._starts_tls(sock):
                    _refuse(sock, PLAIN_HTTP_ON_TLS)
                    raise _Close("plain_http_on_tls")
                context = (await self._web.current()).context
                if context is None:  # the file cannot be applied now: fail closed
                    _refuse(sock, TLS_INTERNAL_ERROR_ALERT)
                    raise _Close("web_config")
            try:
                transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                    lambda: protocol, sock, ssl=context,
                    ssl_handshake_timeout=self.options.read_timeout if context else None)
            except (OSError, asyncio.TimeoutError) as exc:  # ssl.SSLError is an OSError
                raise _Close("tls_handshake") from exc
            transport.set_write_buffer_limits(high=0)  # drain() waits until the socket took everything
            writer = asyncio.StreamWriter(transport, protocol, reader, asyncio.get_running_loop())
            await self._requests(conn_id, reader, writer)
            graceful = True
        except _Close as close:
            self.closed[close.reason] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or it was evicted, or the server stops
        except Exception as exc:  # a bug here must cost one connection, not the server
            loop_errors.record("http", exc)
        finally:
            self._conns.pop(conn_id, None)
            if transport is None:
                sock.close()
            elif graceful:
                transport.close()  # the response was drained already
            else:
                transport.abort()

    async def _starts_tls(self, sock: socket.socket) -> bool:
        """Whether the client's first byte opens a TLS handshake (a plain-HTTP client gets a clear 400)."""
        loop = asyncio.get_running_loop()
        readable = loop.create_future()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(sock.fileno(), wake)
        try:
            await asyncio.wait_for(readable, self.options.read_timeout)
        except asyncio.TimeoutError:
            raise _Close("read_timeout") from None
        finally:
            loop.remove_reader(sock.fileno())
        first = sock.recv(1, socket.MSG_PEEK)
        if not first:
            raise ConnectionResetError
        return first == TLS_HANDSHAKE_RECORD

    async def _requests(self, conn_id: int, reader: _Reader, writer: asyncio.StreamWriter) -> None:
        conn = self._conns.get(conn_id)
        wait = self.options.read_timeout  # a new connection must send its request soon
        pipelined = 0
        while conn is not None:
            conn.busy, conn.since = False, time.monotonic()
            try:
                async with asyncio.timeout(wait):  # no task per call, unlike wait_for
                    first = await reader.read(1)
            except asyncio.TimeoutError:
                raise _Close("idle_timeout" if wait == self.options.idle_timeout else "read_timeout") from None
            if not first:
                return
            try:
                async with asyncio.timeout(self.options.read_timeout):
                    head = first + await reader.readuntil(b"\r\n\r\n")
            except asyncio.TimeoutError:
                raise _Close("read_timeout") from None
            except asyncio.LimitOverrunError:
                await self._send(writer, 431, [], b"Request header too large.\n", keep_alive=False)
                raise _Close("bad_request") from None
            conn.busy = True
            request = _parse_head(head)
            if isinstance(request, _Refusal):
                await self._send(writer, request.status, request.headers, request.body, keep_alive=False)
                raise _Close("bad_request")
            method, target, headers, keep_alive = request
            pipelined = pipelined + 1 if reader.buffered() else 0
            if pipelined >= MAX_PIPELINED:  # HTTP lets a server close after any answer; the client retries the rest
                keep_alive = False
                self.closed["pipelined"] += 1
            path, _, query = target.partition("?")
            web = await self._web_config(writer)
            config = web.config if web else None
            status, out_headers, body = await self._respond(web, path, query, headers)
            await self._send(writer, status, out_headers, b"" if method == "HEAD" else body, keep_alive,
                             length=len(body), extra=config.headers if config else None)
            if not keep_alive:
                return
            await self._caught_up(conn, writer)
            wait = self.options.idle_timeout

    async def _web_config(self, writer: asyncio.StreamWriter) -> WebState | None:
        """The web config as it is for this request (its config is None if it cannot be applied),
        or None without --web-config-file. Client certificate names are checked against it too."""
        if self._web is None:
            return None
        web = await self._web.current()
        tls = web.config.tls if web.config else None
        if tls and tls.allowed_sans and not _san_allowed(writer.get_extra_info("peercert"), tls.allowed_sans):
            raise _Close("client_san")
        return web

    async def _respond(self, web: WebState | None, path: str, query: str,
                       headers: dict[str, str]) -> tuple[int, list, bytes]:
        text = [("Content-Type", "text/plain; charset=utf-8")]
        failed = web is not None and web.config is None
        config = web.config if web else None
        # probes answer before auth; with users (or a file that cannot say), without reasons
        probe = route(self._probes, path, reasons=not failed and (config is None or not config.users))
        if probe is not None:
            return probe.status, text, probe.body
        if failed:  # fail closed, never fall back to an older file
            return 500, text, b"The web config cannot be applied; see ig's log.\n"
        if config is not None and config.users:
            authorization = headers.get("authorization")
            allowed = self._auth.cached(config.users, authorization)
            # a bcrypt check takes tens of milliseconds: on the auth pool, not the loop nor a scrape thread
            if allowed is None:
                check = self._auth.submit(config.users, authorization)
                if check is None:
                    return 429, text + [("Retry-After", "1")], b"Too many password checks at once.\n"
                allowed = await asyncio.wrap_future(check)
            if not allowed:
                return 401, text + [("WWW-Authenticate", "Basic")], b"Unauthorized\n"
        if path != self.path:
            return 404, text, f"Not found. Metrics are served at {self.path}\n".encode()
        try:
            key, encoder = scrape_key(query, headers.get("accept"), headers.get("accept-encoding"))
            out_headers, body = await asyncio.wrap_future(self._renders.submit(key, encoder))
        except Exception as exc:
            loop_errors.record("http", exc)
            return 500, text, b"The scrape failed; see ig's log.\n"
        return 200, out_headers, body

    async def _send(self, writer: asyncio.StreamWriter, status: int, headers: list, body: bytes, keep_alive: bool,
                    length: int | None = None, extra: dict | None = None) -> None:
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
                 f"Content-Length: {len(body) if length is None else length}",
                 f"Connection: {'keep-alive' if keep_alive else 'close'}",
                 *(f"{k}: {v}" for k, v in headers), *(f"{k}: {v}" for k, v in (extra or {}).items())]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.requests[status] += 1
        task = asyncio.current_task()
        assert task is not None   # a coroutine of the server's loop runs in a task
        conn = self._conns.get(id(task)) or _Conn(task)
        if len(body) <= WRITE_PIECE_BYTES:
            writer.write(head + body)
            await self._drained(conn, writer)
            return
        self._make_room(body)
        self._in_flight.hold(body)
        conn.body = body
        try:
            writer.write(head)
            view = memoryview(body)  # pieces of the shared body: the transport copies only what the socket refuses
            for start in range(0, len(body), WRITE_PIECE_BYTES):
                writer.write(view[start:start + WRITE_PIECE_BYTES])
                await self._drained(conn, writer)
        finally:
            if conn.body is body:  # else released by an eviction
                conn.body = None
                self._in_flight.release(body)

    async def _drained(self, conn: _Conn, writer: asyncio.StreamWriter) -> None:
        """Wait until the socket took what was written. That waits on the client, so meanwhile the
        connection can be evicted, and it is closed when the socket takes nothing for write_timeout."""
        if not writer.transport.get_write_buffer_size():
            return
        conn.busy, conn.since = False, time.monotonic()
        try:
            async with asyncio.timeout(self.options.write_timeout):
                await writer.drain()
        except asyncio.TimeoutError:
            raise _Close("write_timeout") from None
        conn.busy = True

    async def _caught_up(self, conn: _Conn, writer: asyncio.StreamWriter) -> None:
        """Wait until the client has taken nearly all the answers sent, before reading its next
        request: a client that pipelines and does not read makes ig stop reading it, not pile up
        answers. No progress for write_timeout closes the connection."""
        sock = writer.get_extra_info("socket")
        unsent, pause = _unsent_bytes(sock), 0.05
        if unsent <= PIPELINED_UNSENT_BYTES:
            return
        conn.busy = False
        progress = conn.since = time.monotonic()
        while unsent > PIPELINED_UNSENT_BYTES:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
            now, left = time.monotonic(), _unsent_bytes(sock)
            if left < unsent:
                progress = conn.since = now
            elif now - progress > self.options.write_timeout:
                raise _Close("write_timeout")
            unsent = left


class _Reader(asyncio.StreamReader):
    def buffered(self) -> bool:
        """Whether more of the client's bytes wait here (a next request, sent before this answer)."""
        # the stdlib keeps them in _buffer since asyncio began (private: not in its type stubs)
        return bool(self._buffer)  # type: ignore[attr-defined]


def _unsent_bytes(sock) -> int:
    """Bytes in the socket's send queue that the client has not acknowledged (SIOCOUTQ)."""
    fd = sock.fileno()
    if fd < 0:  # closed meanwhile: the next read ends the connection
        return 0
    return int.from_bytes(fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"), "little", signed=True)


def _refuse(sock: socket.socket, answer: bytes) -> None:
    """Send `answer` and end the connection. What the client sent is read first: closing with
    unread data would send a reset that can destroy the answer before the client reads it."""
    try:
        for _ in range(4):
            if not sock.recv(MAX_HEAD_BYTES):
                break
    except BlockingIOError:
        pass
    sock.send(answer)
    sock.shutdown(socket.SHUT_WR)


class _Refusal(NamedTuple):
    status: int
    headers: list
    body: bytes


def _parse_head(head: bytes):
    """(method, target, headers, keep_alive), or the _Refusal to answer."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1].startswith("/"):
        return _Refusal(400, [], b"Bad request.\n")
    method, target, version = parts
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return _Refusal(400, [], b"Bad request header.\n")
        headers[name.lower()] = value.strip()
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        return _Refusal(505, [], b"HTTP/1.1 only.\n")
    if method not in ("GET", "HEAD"):
        return _Refusal(405, [("Allow", "GET, HEAD")], b"Only GET and HEAD.\n")
    if "transfer-encoding" in headers or headers.get("content-length", "0") != "0":
        return _Refusal(400, [], b"A scrape has no request body.\n")
    connection = headers.get("connection", "").lower()
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    return method, target, headers, keep_alive


def _san_allowed(peercert: dict | None, allowed: tuple[str, ...]) -> bool:
    """The toolkit's client_allowed_sans: some DNS, IP, e-mail or URI name of the certificate is listed."""
    names = [value for _, value in (peercert or {}).get("subjectAltName", ())]
    return any(name in allowed for name in names)


class HttpCollector:
    """The endpoint's own metrics: connections open, refused and closed early, answers by code."""

    def __init__(self, server: MetricsServer) -> None:
        self.server = server

    def collect(self):
        # here, not at the top: kubectl-gadget imports this module for parse_listen_address alone
        from .collector import CLOSE_REASONS, STATUS_CODES, WEB_RELOAD_RESULTS, from_zero, self_families

        server = self.server
        open_, limit, closed, answers, in_flight = self_families(
            "ig_http_connections", "ig_http_connections_limit", "ig_http_connections_closed", "ig_http_responses",
            "ig_http_response_bytes_in_flight")
        open_.add_metric([], server.open_connections)
        limit.add_metric([], server.max_connections)
        for reason, n in sorted(from_zero(CLOSE_REASONS, dict(server.closed)).items()):  # dict(): one atomic copy
            closed.add_metric([reason], n)
        for code, n in sorted(from_zero(STATUS_CODES, {str(c): n for c, n in dict(server.requests).items()}).items()):
            answers.add_metric([code], n)
        in_flight.add_metric([], server._in_flight.bytes)
        families = [open_, limit, closed, answers, in_flight]
        if server._web is not None:
            (reloads,) = self_families("ig_web_config_reloads")
            for result in WEB_RELOAD_RESULTS:
                reloads.add_metric([result], server._web.reloads[result])
            families.append(reloads)
        return families
