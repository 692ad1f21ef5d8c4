"""A pod's top owner from its ownerReferences: a ReplicaSet's Deployment, a Job's CronJob, else the
pod's own controller (DaemonSet, StatefulSet, ...), else none (docs/config.md, Pod owners and labels).

Each ReplicaSet or Job is read once (get, the only verbs the agent's role has on them) and cached
by uid, in a bounded cache; a read that fails gives the pod's own controller and is tried again
after a while, so an API server that refuses (403) costs one read a minute per owner, not one per pod.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections import OrderedDict
from typing import Callable

from .kubeapi import ApiError, TransportError

log = logging.getLogger("igcore.containers")

# kind of the pod's controller -> (API path of its kind, the kind of the owner above it)
PARENTS = {
    "ReplicaSet": ("/apis/apps/v1/namespaces/{ns}/replicasets/{name}", "Deployment"),
    "Job": ("/apis/batch/v1/namespaces/{ns}/jobs/{name}", "CronJob"),
}
CACHE_SIZE = 4096
RETRY_FAILED = 60.0


def controller_of(metadata: dict) -> tuple[str, str, str] | None:
    """(kind, name, uid) of an object's controller reference (the one with controller: true), if any."""
    refs = metadata.get("ownerReferences")
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, dict) and ref.get("controller") is True:
            kind, name, uid = ref.get("kind"), ref.get("name"), ref.get("uid", "")
            if isinstance(kind, str) and isinstance(name, str) and isinstance(uid, str):
                return kind, name, uid
    return None


class OwnerResolver:
    def __init__(self, get: Callable[[str], dict], clock: Callable[[], float] = time.monotonic) -> None:
        """`get(path)`: one object from the API server (KubeApi.get)."""
        self._get, self._clock = get, clock
        self._cache: OrderedDict[tuple, tuple[str, str, float]] = OrderedDict()   # -> (kind, name, retry at)
        self.reads = 0
        self._warned: set[int] = set()

    def top(self, namespace: str, metadata: dict) -> tuple[str, str]:
        """(kind, name) of the pod's top owner; ("", "") for a bare pod."""
        own = controller_of(metadata)
        if own is None:
            return "", ""
        kind, name, uid = own
        if kind not in PARENTS:
            return kind, name
        key = (namespace, kind, name, uid)
        found = self._cache.get(key)
        if found is not None and (not found[2] or self._clock() < found[2]):
            self._cache.move_to_end(key)
            return found[0], found[1]
        top_kind, top_name, retry = self._read(namespace, kind, name)
        self._cache[key] = (top_kind, top_name, retry)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return top_kind, top_name

    def _read(self, namespace: str, kind: str, name: str) -> tuple[str, str, float]:
        template, parent_kind = PARENTS[kind]
        path = template.format(ns=urllib.parse.quote(namespace, safe=""), name=urllib.parse.quote(name, safe=""))
        self.reads += 1
        try:
            found = self._get(path)
        except (ApiError, TransportError) as exc:
            code = getattr(exc, "code", 0)
            if code not in self._warned:   # one line per kind of failure, not one per owner
                self._warned.add(code)
                log.warning("reading the %s %s/%s of a pod failed (%s): pods of such owners are labelled with "
                            "the %s itself until a read succeeds (docs/config.md, Pod owners and labels)",
                            kind, namespace, name, exc, kind)
            return kind, name, self._clock() + RETRY_FAILED
        parent = controller_of(found.get("metadata") or {}) if isinstance(found, dict) else None
        if parent is not None and parent[0] == parent_kind:
            return parent[0], parent[1], 0.0
        return kind, name, 0.0
