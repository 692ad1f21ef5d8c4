"""The pods of one node as an API server lists and watches them, served by tests/fake_apiserver.py.

A contract, not a cluster: it speaks the protocol client-go's reflector relies on (a paged list
with a resourceVersion, a watch from a version that streams chunked JSON events, BOOKMARK events,
a stream the server ends or that breaks, 410 Gone for a version too old, error statuses) and
records what the client asked; owners (ReplicaSets, Jobs) are canned answers of the same server.
"""

from __future__ import annotations

import json
import threading
import time

from tests.fake_apiserver import FakeApiServer, Request, send_json, status


def pod(namespace: str, name: str, node: str, labels: dict[str, str], owner: tuple[str, str] | None = None) -> dict:
    refs = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": f"uid-{owner[1]}",
             "controller": True}] if owner else []
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}", "labels": labels,
                         "ownerReferences": refs},
            "spec": {"nodeName": node}}


class FakePods:
    def __init__(self, api: FakeApiServer, node: str) -> None:
        self.api, self.node = api, node
        self.version = 100
        self.oldest = 0                     # a watch from a version below this gets 410 Gone
        self.pods: dict[tuple[str, str], dict] = {}
        self.events: list[tuple[int, str, dict]] = []
        self.failures: list[int] = []       # error statuses the next list or watch requests answer
        self.refusing: int | None = None    # the error status every request answers, while set
        self.watching = 0                   # streams open now
        self._drop = 0                      # streams to break (their count when asked)
        self._cond = threading.Condition()
        api.handle = self._handle

    # -- what tests change ----------------------------------------------------------------
    def _record(self, kind: str, obj: dict) -> None:
        with self._cond:
            self.version += 1
            obj = json.loads(json.dumps(obj))
            obj["metadata"]["resourceVersion"] = str(self.version)
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            if kind == "DELETED":
                self.pods.pop(key, None)
            else:
                self.pods[key] = obj
            self.events.append((self.version, kind, obj))
            self._cond.notify_all()

    def add(self, namespace: str, name: str, labels: dict[str, str], owner: tuple[str, str] | None = None) -> None:
        self._record("ADDED", pod(namespace, name, self.node, labels, owner))

    def delete(self, namespace: str, name: str) -> None:
        self._record("DELETED", self.pods[(namespace, name)])

    def owner(self, kind: str, namespace: str, name: str, parent: tuple[str, str]) -> None:
        """A ReplicaSet or Job whose controller is `parent` (kind, name)."""
        path = {"ReplicaSet": f"/apis/apps/v1/namespaces/{namespace}/replicasets/{name}",
                "Job": f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"}[kind]
        self.api.responses[("GET", path)] = (200, {"kind": kind, "metadata": {
            "namespace": namespace, "name": name, "ownerReferences": [
                {"kind": parent[0], "name": parent[1], "uid": f"uid-{parent[1]}", "controller": True}]}})

    def kubeconfig(self, path):
        """A kubeconfig whose current context is this server (the fake's own makes another current)."""
        config = json.loads(self.api.kubeconfig(path).read_text())
        config["current-context"] = "fake"
        path.write_text(json.dumps(config))
        return path

    def bookmark(self) -> None:
        with self._cond:
            self.version += 1
            self.events.append((self.version, "BOOKMARK", {"kind": "Pod", "apiVersion": "v1",
                                                            "metadata": {"resourceVersion": str(self.version)}}))
            self._cond.notify_all()

    def compact(self) -> None:
        """Every version before now is too old: a watch resumed from one gets 410 Gone (an ERROR event)."""
        with self._cond:
            self.oldest = self.version
            self._cond.notify_all()

    def drop_streams(self) -> None:
        """Break the open watch streams (the connection closes mid-stream)."""
        with self._cond:
            self._drop = self.watching
            self._cond.notify_all()

    def watches(self) -> list[Request]:
        return [r for r in self.api.requests if r.path == "/api/v1/pods" and r.query.get("watch") == "true"]

    def lists(self) -> list[Request]:
        return [r for r in self.api.requests if r.path == "/api/v1/pods" and r.query.get("watch") != "true"]

    # -- the server side ------------------------------------------------------------------
    def _handle(self, request: Request, handler) -> bool:
        if request.path != "/api/v1/pods":
            return False
        if request.query.get("fieldSelector") != f"spec.nodeName={self.node}":
            send_json(handler, 400, status(400, "BadRequest", "this contract serves one node's pods only"))
            return True
        with self._cond:
            failure = self.failures.pop(0) if self.failures else self.refusing
        if failure is not None:
            send_json(handler, failure, status(failure, "Failure", f"scripted {failure}"))
        elif request.query.get("watch") == "true":
            self._watch(request, handler)
        else:
            self._list(request, handler)
        return True

    def _list(self, request: Request, handler) -> None:
        """Pages of `limit` pods; the continue token is the offset (opaque to the client)."""
        with self._cond:
            items = sorted(self.pods.values(), key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
            version = self.version
        start = int(request.query.get("continue") or 0)
        limit = int(request.query.get("limit") or len(items) or 1)
        page = items[start:start + limit]
        more = str(start + limit) if start + limit < len(items) else ""
        send_json(handler, 200, {"kind": "PodList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(version), "continue": more}, "items": page})

    def _watch(self, request: Request, handler) -> None:
        handler.protocol_version = "HTTP/1.1"
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def chunk(data: bytes) -> None:
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        since = int(request.query.get("resourceVersion") or 0)
        deadline = time.monotonic() + float(request.query.get("timeoutSeconds") or 60)
        with self._cond:
            self.watching += 1
            try:
                if since < self.oldest:
                    gone = status(410, "Expired", f"too old resource version: {since} ({self.oldest})")
                    chunk(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                    chunk(b"")
                    return
                while True:
                    for version, kind, obj in self.events:
                        if version > since:
                            if kind == "BOOKMARK" and request.query.get("allowWatchBookmarks") != "true":
                                continue
                            chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                            since = version
                    if self._drop:
                        self._drop -= 1
                        return   # no last chunk: the stream breaks
                    left = deadline - time.monotonic()
                    if left <= 0:
                        chunk(b"")   # the server's timeout: the stream ends cleanly
                        return
                    self._cond.wait(min(left, 0.5))
            except OSError:
                return
            finally:
                self.watching -= 1
