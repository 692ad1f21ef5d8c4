"""The API calls of `kubectl gadget`, through lightkube, each failure turned into one sentence.

lightkube because a kubectl plugin's users already have a kubeconfig: it reads kubeconfig files
and contexts (exec credential plugins included) as kubectl does, speaks server-side apply with a
field manager of our own, and is small (httpx and typed models) next to the official client.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import httpx2
from lightkube import Client, KubeConfig, codecs
from lightkube.core.exceptions import ApiError, ConfigError as KubeConfigError
from lightkube.resources.apps_v1 import DaemonSet
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, ServiceAccount

from ..configwatch import CONFIG_KEY
from ..errors import ConfigError, RuntimeFailure
from .manifests import CONFIG_MAP, FIELD_MANAGER, NAME, SELECTOR

_KINDS = {"ConfigMap": ConfigMap, "DaemonSet": DaemonSet, "Namespace": Namespace, "ServiceAccount": ServiceAccount}
_STATUS_WORDS = {401: "unauthorized", 403: "forbidden", 404: "not found", 409: "conflict"}


@dataclass(frozen=True)
class Target:
    kubeconfig: str | None
    context: str | None
    namespace: str


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
        except (KubeConfigError, OSError) as exc:
            raise ConfigError(f"cannot use the kubeconfig: {exc}") from None
        if single is None:
            raise ConfigError(f"kubeconfig has no context {target.context!r}")
        self.server = single.cluster.server
        self._client = Client(config=single, field_manager=FIELD_MANAGER, trust_env=False)

    @contextmanager
    def _call(self, what: str):
        """Turns the client's errors into one sentence naming what we were doing."""
        try:
            yield
        except ApiError as exc:
            code = exc.status.code
            word = _STATUS_WORDS.get(code, "error")
            raise RuntimeFailure(f"{what}: the API server answered {code} ({word}): {exc.status.message}") from None
        except httpx2.TransportError as exc:
            raise RuntimeFailure(f"{what}: cannot reach the API server at {self.server}: {exc}") from None

    def apply(self, obj: dict) -> None:
        """Server-side apply under our field manager (forced: these fields are ours to set)."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        with self._call(f"applying {kind.lower()} {name}"):
            self._client.apply(codecs.from_dict(obj), field_manager=FIELD_MANAGER, force=True)

    def delete(self, kind: str, name: str) -> bool:
        """False if it was not there."""
        try:
            with self._call(f"deleting {kind.lower()} {name}"):
                self._client.delete(_KINDS[kind], name, namespace=None if kind == "Namespace" else self.namespace)
        except RuntimeFailure as exc:
            if "answered 404" in str(exc):
                return False
            raise
        return True

    def namespace_is_ours(self) -> bool:
        with self._call(f"reading namespace {self.namespace}"):
            try:
                labels = self._client.get(Namespace, self.namespace).metadata.labels or {}
            except ApiError as exc:
                if exc.status.code == 404:
                    return False
                raise
        return SELECTOR.items() <= labels.items()

    def agent_image(self) -> str:
        with self._call(f"reading daemonset {NAME} in namespace {self.namespace} (deploy it first: kubectl gadget deploy)"):
            ds = self._client.get(DaemonSet, NAME, namespace=self.namespace)
        return next(c.image for c in ds.spec.template.spec.containers if c.name == NAME)

    def config_text(self) -> str | None:
        with self._call(f"reading configmap {CONFIG_MAP} in namespace {self.namespace}"):
            try:
                cm = self._client.get(ConfigMap, CONFIG_MAP, namespace=self.namespace)
            except ApiError as exc:
                if exc.status.code == 404:
                    return None
                raise
        return (cm.data or {}).get(CONFIG_KEY)

    def agent_pods(self) -> list[AgentPod]:
        with self._call(f"listing the agent pods in namespace {self.namespace}"):
            pods = list(self._client.list(Pod, namespace=self.namespace, labels=SELECTOR))
        return [AgentPod(p.spec.nodeName or "-", p.metadata.name, p.status.phase if p.status else "-") for p in pods]
