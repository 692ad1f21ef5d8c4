"""deploy creates its namespace, never adopts one; undeploy deletes only what deploy created.

A namespace is ig's only when it carries CREATED_BY, which deploy sets in the body of its create
and nowhere else: labels prove nothing (anyone, an older deploy included, may have set them).
An existing namespace is used only when the operator says so, and then none of its labels or
annotations are written (docs/guide.md, "Deploy the agents").
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, RuntimeFailure
from .manifests import CREATED_BY, POD_SECURITY_LEVEL, Values, namespace


@dataclass(frozen=True)
class Claim:
    created: bool        # this deploy created the namespace
    warning: str | None  # for an existing namespace that will refuse the agent's pods


def is_ours(meta) -> bool:
    return meta is not None and CREATED_BY in meta.annotations


def claim_namespace(cluster, values: Values, use_existing: bool) -> Claim:
    """Create the namespace if it does not exist; else judge the one that does."""
    meta = cluster.namespace_meta()
    if meta is None:
        if cluster.create(namespace(values)):
            return Claim(True, None)
        meta = cluster.namespace_meta()  # created by someone else meanwhile
        if meta is None:
            raise RuntimeFailure(f"namespace {values.namespace} was created and deleted by someone else while "
                                 "deploy looked at it: run deploy again")
    if is_ours(meta):
        return Claim(False, None)
    if not use_existing:
        raise ConfigError(f"namespace {values.namespace} exists and was not created by kubectl gadget deploy: "
                          "refusing to take it over (pass --use-existing-namespace to deploy into it "
                          "unchanged; undeploy will then leave it), or choose another with -n")
    return Claim(False, _pod_security_warning(values.namespace, meta.labels))


def _pod_security_warning(name: str, labels: dict[str, str]) -> str | None:
    level = labels.get(POD_SECURITY_LEVEL)
    if level is None or level == "privileged":  # absent: the admission's default, privileged unless configured
        return None
    return (f"namespace {name} enforces Pod Security level {level[:40]!r}: the agent's pods (hostPID, host "
            "paths, capabilities) need 'privileged'; kubectl gadget changes none of the namespace's labels")
