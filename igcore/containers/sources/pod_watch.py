"""The pods of this node, from the API server: list, then watch from the list's resourceVersion.

As client-go's reflector does: `fieldSelector=spec.nodeName=NODE` keeps the watch to this node's
pods; a watch that ends (the server's timeout, a dropped connection) resumes from the last
resourceVersion seen (bookmarks move it on while nothing changes); 410 Gone (that version is too
old) lists again; any other error waits, with a growing backoff, and tries again. What each pod
gives rows (its top owner, the labels the config uses) goes into the `PodDirectory`
(containers/pods.py). docs/config.md, Pod owners and labels, says what it needs and how it is tested.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable

from ...health import loop_errors
from ..pods import PodDirectory, PodMeta
from .kubeapi import ApiError, KubeApi, TransportError
from .owners import OwnerResolver

log = logging.getLogger("igcore.containers")

PODS = "/api/v1/pods"
PAGE = 500
WATCH_TIMEOUT = 300        # seconds the server keeps one watch open (client-go uses 5-10 minutes)
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
# why a watch started again (ig_k8s_watch_restarts_total{reason}), all exported from 0
EXPIRED = "expired"            # 410 Gone: the resourceVersion is too old, the pods are listed again
FORBIDDEN = "forbidden"        # 401 or 403: the agent's role or token
HTTP_ERROR = "http_error"      # any other error status
UNREACHABLE = "unreachable"    # no connection, or one that broke, or an answer that is not JSON
ENDED = "ended"                # the server ended the stream (its timeout): resumed at once
RESTART_REASONS = (EXPIRED, FORBIDDEN, HTTP_ERROR, UNREACHABLE, ENDED)


class PodWatch:
    name = "pod-watch"

    def __init__(self, api: KubeApi, node: str, *, clock: Callable[[], float] = time.monotonic,
                 watch_timeout: int = WATCH_TIMEOUT) -> None:
        self.api, self.node, self.clock = api, node, clock
        self.pods = PodDirectory()   # the collection's, from start() on
        self.owners = OwnerResolver(api.get, clock)
        self.watch_timeout = watch_timeout
        self.restarts = dict.fromkeys(RESTART_REASONS, 0)
        self.started_at = clock()
        self.last_event: float | None = None   # a list, or any watch event (bookmarks too)
        self.listed = threading.Event()        # the first list is in
        self._version: str | None = None       # resume from here; None: list first
        self._relist = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, sink) -> None:
        """`sink`: the container collection; the pods go to its `pods` directory."""
        self.pods = sink.pods
        # a new event each run: a thread of an earlier run, still in a read, ends at its next event
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(self._stop,), name="ig-pod-watch", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        if self.pods is not None:
            self.pods.expire()

    def stop(self) -> None:
        """The thread may be in a read: it is a daemon thread, and ends at its next event or timeout."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
            self._thread = None

    def relist(self) -> None:
        """List the pods again at the next event (the config now uses other label keys)."""
        self._relist.set()

    def seconds_since_last_event(self) -> float:
        return self.clock() - (self.last_event if self.last_event is not None else self.started_at)

    # -- the loop -------------------------------------------------------------------------
    def _loop(self, stop: threading.Event) -> None:
        backoff, previous = BACKOFF_FIRST, None
        while not stop.is_set():
            events = 0
            try:
                if self._version is None or self._relist.is_set():
                    self._relist.clear()
                    self._list()
                events = self._watch(stop)
                if self._relist.is_set() or stop.is_set():
                    continue   # not a restart: the config asked for other label keys
                reason = ENDED
            except ApiError as exc:
                reason = EXPIRED if exc.code == 410 else FORBIDDEN if exc.code in (401, 403) else HTTP_ERROR
                self._failed(reason, exc)
            except TransportError as exc:
                reason = UNREACHABLE
                self._failed(reason, exc)
            except Exception as exc:   # a bug must not end the watch: counted, and tried again
                reason = UNREACHABLE
                loop_errors.record("containers.pod-watch", exc)
            if stop.is_set():
                return
            self.restarts[reason] += 1
            if reason == EXPIRED:
                self._version = None   # list again
            # At once after a stream that carried events, or after a first 410; else a backoff
            # that grows, so a server that answers nothing else never gets a busy loop.
            if (reason == ENDED and events) or (reason == EXPIRED and previous != EXPIRED):
                backoff = BACKOFF_FIRST
            else:
                stop.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, BACKOFF_MAX)
            previous = reason

    def _failed(self, reason: str, exc: Exception) -> None:
        """One warning per reason; the counter says how often."""
        if reason == EXPIRED:
            log.debug("pod watch: %s; listing the pods again", exc)
            return
        if reason not in self._warned:
            self._warned.add(reason)
            hint = (" (the agent's ClusterRole must grant get, list and watch on pods: kubectl gadget deploy "
                    "renders it)" if reason == FORBIDDEN else "")
            log.warning("the watch of this node's pods at %s failed: %s%s; trying again with a backoff "
                        "(ig_k8s_watch_restarts_total{reason=%r})", self.api.server, exc, hint, reason,
                        extra={"reason": reason})

    def _selector(self) -> dict:
        return {"fieldSelector": f"spec.nodeName={self.node}"}

    def _list(self) -> None:
        pods: dict[tuple[str, str], PodMeta] = {}
        params = {**self._selector(), "limit": str(PAGE)}
        while True:
            page = self.api.get(PODS, params)
            items = page.get("items") if isinstance(page, dict) else None
            for pod in items if isinstance(items, list) else ():
                found = self._meta(pod)
                if found is not None:
                    pods[found[0]] = found[1]
            metadata = page.get("metadata") if isinstance(page, dict) else None
            metadata = metadata if isinstance(metadata, dict) else {}
            more = metadata.get("continue")
            if not (isinstance(more, str) and more):
                break
            params = {**params, "continue": more}
        version = metadata.get("resourceVersion")
        if not isinstance(version, str):
            raise TransportError("the pod list carries no resourceVersion")
        self.pods.replace_all(pods)
        self._version = version
        self.last_event = self.clock()
        self.listed.set()

    def _watch(self, stop: threading.Event) -> int:
        """The events of one watch into the directory; how many there were."""
        events = 0
        params = {**self._selector(), "watch": "true", "allowWatchBookmarks": "true",
                  "resourceVersion": self._version, "timeoutSeconds": str(self.watch_timeout)}
        for event in self.api.watch(PODS, params, timeout=self.watch_timeout + 30):
            if stop.is_set() or self._relist.is_set():
                return events
            self._event(event)
            events += 1
        return events

    def _event(self, event: object) -> None:
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(obj, dict):
            raise TransportError("a watch event without an object")
        if kind == "ERROR":   # a Status: 410 Gone when the version is too old
            code = obj.get("code")
            raise ApiError(code if isinstance(code, int) else 500, str(obj.get("message", ""))[:300])
        self.last_event = self.clock()
        found_metadata = obj.get("metadata")
        metadata = found_metadata if isinstance(found_metadata, dict) else {}
        version = metadata.get("resourceVersion")
        if isinstance(version, str) and version:
            self._version = version
        if kind in ("ADDED", "MODIFIED"):
            found = self._meta(obj)
            if found is not None:
                self.pods.put(*found[0], found[1])
        elif kind == "DELETED":
            namespace, name = metadata.get("namespace"), metadata.get("name")
            if isinstance(namespace, str) and isinstance(name, str):
                self.pods.delete(namespace, name)

    def _meta(self, pod: object) -> tuple[tuple[str, str], PodMeta] | None:
        """((namespace, name), what rows get) of a pod object; None for one that is not a pod."""
        metadata = pod.get("metadata") if isinstance(pod, dict) else None
        if not isinstance(metadata, dict):
            return None
        namespace, name = metadata.get("namespace"), metadata.get("name")
        if not (isinstance(namespace, str) and isinstance(name, str)):
            return None
        labels = metadata.get("labels")
        labels = {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)} \
            if isinstance(labels, dict) else {}
        owner_kind, owner_name = self.owners.top(namespace, metadata)
        return (namespace, name), self.pods.meta(owner_kind, owner_name, labels)
