"""The docker Engine API over its unix socket, with the standard library only."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.parse
from typing import Iterator

from .model import is_sandbox, k8s_names
from .pods import pod_labels_of_sandbox


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class DockerClient:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._events_lock = threading.Lock()
        self._events_conn: http.client.HTTPConnection | None = None
        self._closed = False   # close_events() was called: no event stream opens any more

    def _get(self, path: str, timeout: float | None = 10):
        conn = _UnixConnection(self.socket_path, timeout)
        conn.request("GET", path)
        resp = conn.getresponse()
        if resp.status != 200:
            body = resp.read().decode(errors="replace")
            conn.close()
            raise OSError(f"docker API {path}: HTTP {resp.status} {body.strip()}")
        return conn, resp

    def get_json(self, path: str):
        conn, resp = self._get(path)
        try:
            return json.loads(resp.read())
        finally:
            conn.close()

    def ping(self) -> None:
        conn, resp = self._get("/_ping", timeout=2)
        resp.read()
        conn.close()

    def running_ids(self) -> list[str]:
        return [c["Id"] for c in self.get_json("/containers/json")]

    def inspect(self, cid: str) -> dict:
        return self.get_json(f"/containers/{cid}/json")

    def events(self, since: str = "") -> Iterator[dict]:
        """Container events from `since` (a unix time; "" for now on) as they happen (blocks; ends
        when the connection does)."""
        params = {"filters": json.dumps({"type": ["container"]})}
        if since:
            params["since"] = since
        query = urllib.parse.urlencode(params)
        conn, resp = self._get(f"/events?{query}", timeout=None)
        with self._events_lock:   # a close_events() racing with this connection must still end it
            self._events_conn = conn
            if self._closed:
                conn.close()
                return
        try:
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()

    def close_events(self) -> None:
        with self._events_lock:
            self._closed = True
            conn = self._events_conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def metadata_from_inspect(info: dict) -> dict:
    """name, image, labels-derived k8s names and init pid of an inspected container."""
    labels = (info.get("Config") or {}).get("Labels") or {}
    ns, pod, container = k8s_names(labels)
    return {
        "name": info.get("Name", "").lstrip("/"),
        "image": (info.get("Config") or {}).get("Image", ""),
        "pid": (info.get("State") or {}).get("Pid", 0) or 0,
        "k8s_namespace": ns, "k8s_pod": pod, "k8s_container": container, "sandbox": is_sandbox(labels),
        **_pod_labels(labels),
    }


def metadata_from_event(event: dict) -> dict:
    """The same from an event: create/start events carry name, image and every label."""
    attrs = (event.get("Actor") or {}).get("Attributes") or {}
    ns, pod, container = k8s_names(attrs)
    return {"name": attrs.get("name", ""), "image": attrs.get("image", ""),
            "k8s_namespace": ns, "k8s_pod": pod, "k8s_container": container, "sandbox": is_sandbox(attrs),
            **_pod_labels(attrs)}


def _pod_labels(labels: dict) -> dict:
    """A cri-dockerd sandbox's pod labels, sorted (an event's attributes also hold name and image)."""
    if not is_sandbox(labels):
        return {}
    found = pod_labels_of_sandbox(labels)
    for attribute in ("name", "image"):   # an event's own attributes, not labels
        found.pop(attribute, None)
    return {"pod_labels": tuple(sorted(found.items()))}
