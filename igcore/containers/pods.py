"""What rows learn of a container's pod: its top owner and its labels (docs/config.md, Pod owners and labels).

Two sources feed one `PodDirectory`, keyed by (namespace, pod name): the API server's watch of the
pods on this node (sources/pod_watch.py), and, where there is none, the pod labels that cri-dockerd
copies onto a pod's sandbox container as docker labels. The watch wins where both know a pod.

Only the label keys that the running config uses (`k8s.podLabels.KEY` in labels or selectors) are
held per pod, and the full `k8s.podLabels` text only when the config uses that column: a node
agent holds a few strings per pod, whatever the pods' labels.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from ..columns import POD_LABEL_PREFIX, pod_label_key

OWNER_KIND, OWNER_NAME, POD_LABELS = "k8s.owner.kind", "k8s.owner.name", "k8s.podLabels"
POD_COLUMNS = (OWNER_KIND, OWNER_NAME, POD_LABELS)
# Labels kubelet and cri-dockerd put on a sandbox container besides the pod's own (a pod's labels
# are the sandbox's docker labels without these).
_RUNTIME_LABEL_PREFIXES = ("io.kubernetes.", "annotation.")
MAX_VALUE = 1024          # a label value (63 in a valid pod) or an owner name, cut beyond this
MAX_LABELS_TEXT = 16384   # the comma-joined k8s.podLabels, cut beyond this
KEEP_DELETED = 60.0       # a deleted pod's entry still labels its containers' late rows this long


@dataclass(frozen=True)
class PodMeta:
    """One pod as rows see it: only the labels the config uses (`labels`), `labels_text` only if used."""
    owner_kind: str = ""
    owner_name: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    labels_text: str = ""


def labels_text(labels: Mapping[str, str]) -> str:
    """`k8s.podLabels`: key=value, sorted by key, comma-joined."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))[:MAX_LABELS_TEXT]


def pod_labels_of_sandbox(docker_labels: Mapping[str, str]) -> dict[str, str]:
    """A pod's labels from its cri-dockerd sandbox container's docker labels."""
    return {k: v for k, v in docker_labels.items()
            if isinstance(k, str) and isinstance(v, str) and not k.startswith(_RUNTIME_LABEL_PREFIXES)}


def used_pod_columns(columns: Iterable[str]) -> tuple[frozenset[str], bool, bool]:
    """(label keys, whether k8s.podLabels is used, whether an owner column is) among canonical
    column names."""
    names = list(columns)
    keys = frozenset(k for k in map(pod_label_key, names) if k)
    return keys, POD_LABELS in names, OWNER_KIND in names or OWNER_NAME in names


class PodDirectory:
    """The pods rows can be labelled with; thread-safe. `columns(namespace, pod)` gives every pod
    column the config uses ("" where unknown), so a row has each label column, and no other: rows
    of a config without pod columns carry none (each column a row carries costs every row)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: frozenset[str] = frozenset()
        self._want_text = False
        self._want_owner = False
        self._watched: dict[tuple[str, str], PodMeta] = {}
        self._deleted: dict[tuple[str, str], float] = {}      # watched pods deleted lately -> when
        self._sandboxes: dict[tuple[str, str], dict[str, str]] = {}   # runtime records: all labels
        self._empty = self._columns_of(PodMeta())

    # -- what the config uses -------------------------------------------------------------
    def want(self, columns: Iterable[str]) -> bool:
        """Hold the pod columns among `columns` (a config's labels and selectors); True when that
        changes what is held (the watch then lists the pods again to learn the new keys)."""
        keys, text, owner = used_pod_columns(columns)
        with self._lock:
            changed = (keys, text) != (self._keys, self._want_text)
            self._keys, self._want_text, self._want_owner = keys, text, owner
            self._empty = self._columns_of(PodMeta())
        return changed

    @property
    def in_use(self) -> bool:
        """The config has a label or selector on a pod column other than the owners'."""
        return bool(self._keys) or self._want_text

    def meta(self, owner_kind: str, owner_name: str, labels: Mapping[str, str]) -> PodMeta:
        """What is held of a pod: its owner and the labels the config uses."""
        keys = self._keys
        held = tuple(sorted((k, str(v)[:MAX_VALUE]) for k, v in labels.items() if k in keys))
        return PodMeta(owner_kind[:MAX_VALUE], owner_name[:MAX_VALUE], held,
                       labels_text(labels) if self._want_text else "")

    # -- the watch ------------------------------------------------------------------------
    def put(self, namespace: str, pod: str, meta: PodMeta) -> None:
        with self._lock:
            self._watched[(namespace, pod)] = meta
            self._deleted.pop((namespace, pod), None)

    def delete(self, namespace: str, pod: str) -> None:
        with self._lock:
            if (namespace, pod) in self._watched:
                self._deleted[(namespace, pod)] = self.clock()

    def replace_all(self, pods: dict[tuple[str, str], PodMeta]) -> None:
        """After a list: the pods listed; those gone since are kept as deleted for a while."""
        now = self.clock()
        with self._lock:
            for key in self._watched.keys() - pods.keys():
                self._deleted.setdefault(key, now)
            for key in pods:
                self._deleted.pop(key, None)
            self._watched = {**{k: self._watched[k] for k in self._deleted}, **pods}

    def expire(self) -> None:
        now = self.clock()
        with self._lock:
            for key, when in list(self._deleted.items()):
                if now - when > KEEP_DELETED:
                    del self._deleted[key]
                    self._watched.pop(key, None)

    def count(self) -> int:
        """The pods of this node the watch knows (deleted ones not counted)."""
        with self._lock:
            return len(self._watched) - len(self._deleted)

    # -- runtime records (cri-dockerd sandboxes) -------------------------------------------
    def sandbox_added(self, container) -> None:
        """A collection subscriber: a sandbox container with pod labels."""
        if container.sandbox and container.k8s_pod and container.pod_labels:
            with self._lock:
                self._sandboxes[(container.k8s_namespace, container.k8s_pod)] = dict(container.pod_labels)

    def sandbox_removed(self, container) -> None:
        if container.sandbox:
            with self._lock:
                self._sandboxes.pop((container.k8s_namespace, container.k8s_pod), None)

    # -- what rows get ----------------------------------------------------------------------
    def columns(self, namespace: str, pod: str) -> dict[str, str]:
        if not pod or not (self._want_owner or self._want_text or self._keys):
            return self._empty
        key = (namespace, pod)
        with self._lock:
            meta = self._watched.get(key)
            labels = self._sandboxes.get(key) if meta is None else None
        if meta is None:
            if labels is None:
                return self._empty
            meta = self.meta("", "", labels)
        return self._columns_of(meta)

    def _columns_of(self, meta: PodMeta) -> dict[str, str]:
        out = {OWNER_KIND: meta.owner_kind, OWNER_NAME: meta.owner_name} if self._want_owner else {}
        if self._want_text:
            out[POD_LABELS] = meta.labels_text
        held = dict(meta.labels)
        for key in self._keys:
            out[POD_LABEL_PREFIX + key] = held.get(key, "")
        return out
