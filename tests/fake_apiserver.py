"""A local HTTP endpoint that stands in for a Kubernetes API server in contract tests.

It records every request (method, path, query, headers, body) and answers from a table of canned
responses, or through `handle` (the list and watch of pods, tests/fake_pods.py); it is NOT a
cluster: it checks what ig's clients send and how they take the protocol's answers, not what a
cluster does.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict | None


def status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def send_json(handler: BaseHTTPRequestHandler, code: int, body: dict) -> None:
    data = json.dumps(body).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class FakeApiServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        # (method, path) -> answer, or a list of answers given in turn (the last one repeats)
        self.responses: dict[tuple[str, str], tuple[int, dict] | list[tuple[int, dict]]] = {}
        # (request, handler) -> True when it wrote the answer itself (a streamed watch)
        self.handle = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = Request(self.command, url.path, dict(urllib.parse.parse_qsl(url.query)),
                                  {k.lower(): v for k, v in self.headers.items()}, json.loads(raw) if raw else None)
                server.requests.append(request)
                if server.handle is not None and server.handle(request, self):
                    return
                answer = server.responses.get((self.command, url.path), (None, None))
                if isinstance(answer, list):
                    answer = answer.pop(0) if len(answer) > 1 else answer[0]
                code, body = answer
                if code is None:  # an apply or a create answers with the object sent
                    code, body = {"PATCH": (200, request.body), "POST": (201, request.body)}.get(
                        self.command, (404, status(404, "NotFound", f"{url.path} not found")))
                send_json(self, code, body)

            do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _answer

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def kubeconfig(self, path: Path) -> Path:
        """Two contexts; the current one points nowhere, so only --context fake reaches this server."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "elsewhere",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}},
                         {"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}}],
            "users": [{"name": "tester", "user": {"token": "contract-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}},
                         {"name": "elsewhere", "context": {"cluster": "nowhere", "user": "tester"}}],
        }))
        return path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
