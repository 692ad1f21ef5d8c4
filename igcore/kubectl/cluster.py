"""The API calls of `kubectl gadget`, through lightkube, each failure turned into one sentence.

lightkube because a kubectl plugin's users already have a kubeconfig: it reads kubeconfig files
and contexts (exec credential plugins included) as kubectl does, speaks server-side apply with a
field manager of our own, and is small (httpx and typed models) next to the official client.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube import Client, KubeConfig, codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import DaemonSet
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Secret, ServiceAccount
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding

from ..configwatch import CONFIG_KEY
from ..errors import ConfigError, RuntimeFailure, describe
from ..quoting import one_line
from .kept import KEPT_ANNOTATION
from .manifests import CONFIG_MAP, FIELD_MANAGER, NAME, POD_MONITOR_API, SELECTOR

# The Prometheus Operator's kind: known to the client here, to the cluster only where the operator runs.
_GROUP, _VERSION = POD_MONITOR_API.split("/")
PodMonitor = create_namespaced_resource(_GROUP, _VERSION, "PodMonitor", "podmonitors")
_KINDS: dict[str, Any] = {"ConfigMap": ConfigMap, "DaemonSet": DaemonSet, "Namespace": Namespace,
                          "NetworkPolicy": NetworkPolicy, "Secret": Secret, "ServiceAccount": ServiceAccount,
                          "ClusterRole": ClusterRole, "ClusterRoleBinding": ClusterRoleBinding,
                          "PodMonitor": PodMonitor}
# What a 404 on applying a kind that a cluster may not have means.
_MISSING_KIND = {"PodMonitor": "the cluster has no PodMonitor kind: is the Prometheus Operator installed? "
                               "(or deploy without --pod-monitor; the scrape annotations are always there)"}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
_STATUS_WORDS = {401: "unauthorized", 403: "forbidden", 404: "not found", 409: "conflict"}


@dataclass(frozen=True)
class Target:
    kubeconfig: str | None
    context: str | None
    namespace: str


@dataclass(frozen=True)
class NamespaceMeta:
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class DeployedAgent:
    image: str
    kept: str | None   # the DaemonSet's KEPT_ANNOTATION, unchecked


@dataclass(frozen=True)
class AgentPod:
    node: str
    name: str
    phase: str


class Cluster:
    def __init__(self, target: Target) -> None:
        self.namespace = target.namespace
        try:
            config = KubeConfig.from_file(target.kubeconfig) if target.kubeconfig else KubeConfig.from_env()
            single = config.get(context_name=target.context)
        except Exception as exc:   # a hostile file fails in many ways (YAML, its shape, certificates): one line
            raise ConfigError(f"cannot use the kubeconfig: {one_line(describe(exc))}") from None
        if single is None:
            raise ConfigError(f"kubeconfig has no context {target.context!r}")
        self.server = single.cluster.server
        self._client = Client(config=single, field_manager=FIELD_MANAGER, trust_env=False)

    @contextmanager
    def _call(self, what: str, missing: str | None = None):
        """Turns the client's errors into one sentence naming what we were doing (`missing`: what a
        404 means instead)."""
        try:
            yield
        except ApiError as exc:
            code = exc.status.code
            if code == 404 and missing:
                raise RuntimeFailure(f"{what}: {missing}") from None
            word = _STATUS_WORDS.get(code or 0, "error")
            raise RuntimeFailure(f"{what}: the API server answered {code} ({word}): {exc.status.message}") from None
        except httpx2.TransportError as exc:
            raise RuntimeFailure(f"{what}: cannot reach the API server at {self.server}: {exc}") from None

    def apply(self, obj: dict) -> None:
        """Server-side apply under our field manager (forced: these objects are ours to set)."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        with self._call(f"applying {kind.lower()} {name}", _MISSING_KIND.get(kind)):
            self._client.apply(codecs.from_dict(obj), field_manager=FIELD_MANAGER, force=True)

    def create(self, obj: dict) -> bool:
        """A create, never an update: False if it already exists."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        with self._call(f"creating {kind.lower()} {name}"):
            try:
                self._client.create(codecs.from_dict(obj), field_manager=FIELD_MANAGER)
            except ApiError as exc:
                if exc.status.code == 409:
                    return False
                raise
        return True

    def delete(self, kind: str, name: str) -> bool:
        """False if it was not there."""
        with self._call(f"deleting {kind.lower()} {name}"):
            try:
                self._client.delete(_KINDS[kind], name, namespace=None if kind in _CLUSTER_SCOPED else self.namespace)
            except ApiError as exc:
                if exc.status.code == 404:
                    return False
                raise
        return True

    def _get(self, kind: str, name: str):
        """The object; None if it does not exist."""
        where = "" if kind == "Namespace" else f" in namespace {self.namespace}"
        with self._call(f"reading {kind.lower()} {name}{where}"):
            try:
                return self._client.get(_KINDS[kind], name, namespace=None if kind == "Namespace" else self.namespace)
            except ApiError as exc:
                if exc.status.code == 404:
                    return None
                raise

    def namespace_meta(self) -> NamespaceMeta | None:
        """The namespace's labels and annotations; None if it does not exist."""
        found = self._get("Namespace", self.namespace)
        if found is None:
            return None
        return NamespaceMeta(dict(found.metadata.labels or {}), dict(found.metadata.annotations or {}))

    def deployed_agent(self) -> DeployedAgent | None:
        """The agent DaemonSet's image and kept values; None if it is not deployed."""
        ds = self._get("DaemonSet", NAME)
        if ds is None:
            return None
        image = next((c.image for c in ds.spec.template.spec.containers if c.name == NAME), None)
        kept = (ds.metadata.annotations or {}).get(KEPT_ANNOTATION)
        return DeployedAgent(str(image or ""), kept if isinstance(kept, str) else None)

    def config_text(self) -> str | None:
        cm = self._get("ConfigMap", CONFIG_MAP)
        return None if cm is None else (cm.data or {}).get(CONFIG_KEY)

    def agent_pods(self) -> list[AgentPod]:
        with self._call(f"listing the agent pods in namespace {self.namespace}"):
            pods = list(self._client.list(Pod, namespace=self.namespace, labels={**SELECTOR}))
        return [AgentPod((p.spec and p.spec.nodeName) or "-", (p.metadata and p.metadata.name) or "-",
                         (p.status and p.status.phase) or "-") for p in pods]
