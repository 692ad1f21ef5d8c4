"""Docker containers from the Engine API: the running ones at start, then the event stream.

Create/start events carry name, image and labels, so a container that lives a fraction of a second
is still named. Events are read from before the listing (a container started in between is not
missed), and a reconnection replays what the stream missed. The reader reconnects after any error
of the stream (a connection dropped mid-chunk raises http.client.IncompleteRead) and counts it in
ig_loop_errors_total.
"""

from __future__ import annotations

import os
import threading
import time

from ...health import loop_errors
from ..docker import DockerClient, metadata_from_event, metadata_from_inspect
from .base import SourceSink

COMPONENT = "containers.docker-events"


class DockerSource:
    name = "docker"

    def __init__(self, socket_path: str, reconnect_seconds: float = 1.0, runtime: str = "docker") -> None:
        self.socket_path = socket_path
        self.runtime = runtime   # its name in the runtime table: what it reports under (merge.py)
        self.reconnect_seconds = reconnect_seconds
        self._client: DockerClient | None = None
        self._sink: SourceSink | None = None
        self._since = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    def start(self, sink: SourceSink) -> None:
        self._sink = sink
        self._stop.clear()
        client = DockerClient(self.socket_path)
        self._since = str(int(time.time()))
        try:
            client.ping()
            ids = client.running_ids()
        except OSError as exc:
            self._client = None
            if not os.path.exists(self.socket_path):
                sink.skip(f"{self.runtime}: not found ({self.socket_path}); skipped")
            else:
                sink.warn(f"{self.runtime}: not reachable at {self.socket_path} ({exc.strerror or exc}): "
                          "its containers count as host processes")
            return
        self._client = client
        self._thread = threading.Thread(target=self._read_events, name="ig-docker-events", daemon=True)
        self._thread.start()
        for cid in ids:
            self._inspect(cid)

    def refresh(self) -> None:
        pass   # the event stream is live

    def runtimes_in_use(self) -> list[str]:
        return [self.runtime] if self.connected else []

    def stop(self) -> None:
        self._stop.set()
        if self._client is not None:
            self._client.close_events()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _inspect(self, cid: str) -> None:
        assert self._client is not None and self._sink is not None   # start() connected
        try:
            meta = metadata_from_inspect(self._client.inspect(cid))
        except (OSError, ValueError):
            return  # gone already: what the events said is kept
        self._sink.report(self.runtime, cid, meta, running=bool(meta["pid"]))

    def _read_events(self) -> None:
        assert self._client is not None   # start() connected, then started this thread
        while not self._stop.is_set():
            try:
                for event in self._client.events(self._since):
                    self._event(event)
                    nanos = event.get("timeNano") or 0
                    if nanos:   # a reconnection replays what it missed
                        self._since = f"{nanos // 10**9}.{nanos % 10**9:09d}"
                if self._stop.is_set():
                    return
                raise ConnectionError("docker closed the event stream")
            except Exception as exc:  # any error of the stream: count it, reconnect
                if self._stop.is_set():
                    return
                loop_errors.record(COMPONENT, exc)
                self._stop.wait(self.reconnect_seconds)

    def _event(self, event: dict) -> None:
        action = event.get("Action") or event.get("status") or ""
        cid = (event.get("Actor") or {}).get("ID") or event.get("id") or ""
        if not cid:
            return
        assert self._sink is not None   # start() set it before the events thread
        if action in ("create", "start"):
            self._sink.report(self.runtime, cid, metadata_from_event(event))
            if action == "start":
                self._inspect(cid)
        elif action in ("die", "destroy"):
            self._sink.report_exit(cid)
