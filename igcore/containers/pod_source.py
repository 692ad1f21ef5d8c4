"""Which source gives rows their pod's owner and labels, chosen at start (docs/config.md, Pod owners and labels).

The API server's pod watch when there is one to use: `--kubeconfig`, or ig runs in a pod (the
node agent, with its service account's token). Otherwise the runtimes' records, which carry pod
labels only for cri-dockerd's sandboxes (never owners): one line at start says what is missing.
"""

from __future__ import annotations

import logging
from typing import Iterable

from ..columns import pod_label_key
from ..errors import ConfigError
from .pods import POD_COLUMNS

log = logging.getLogger("igcore.containers")


def pod_watch_for(kubeconfig: str | None, node: str):
    """The watch of this node's pods, a container source; None without an API server to use. A bad
    --kubeconfig is the user's error (ConfigError); a pod without a usable token is said in one
    line, and ig goes on without the watch."""
    from .sources.kubeapi import KubeApi, in_a_pod
    from .sources.pod_watch import PodWatch

    if not kubeconfig and not in_a_pod():
        return None
    if not node:
        if kubeconfig:
            raise ConfigError("--kubeconfig: the pod watch needs this node's name in the NODE_NAME environment "
                              "variable (the node whose pods to watch)")
        log.warning("pod owners and labels: NODE_NAME is not set, so this node's pods are not watched; "
                    "k8s.owner.* and k8s.podLabels* are empty")
        return None
    try:
        api = KubeApi(kubeconfig)
    except ConfigError as exc:
        if kubeconfig:
            raise
        log.warning("pod owners and labels: %s; k8s.owner.* and k8s.podLabels* are empty "
                    "(the DaemonSet of kubectl gadget deploy mounts the token)", exc)
        return None
    return PodWatch(api, node)


def columns_used(config) -> list[str]:
    """The canonical column names a config's metrics label or select by."""
    from ..selectors import SelectorError, compile_selector

    names: list[str] = []
    for bound in config.metrics:
        names.extend(bound.label_columns)
        for text in bound.config.selector:
            try:
                names.append(compile_selector(text, bound.spec.columns).column)
            except SelectorError:   # bound already: cannot happen
                pass
    return names


def say_missing_source(columns: Iterable[str], runtimes: tuple[str, ...]) -> None:
    """Without a watch, when the config uses pod columns: the one line naming what is missing."""
    used = [c for c in columns if c in POD_COLUMNS or pod_label_key(c)]
    if not used:
        return
    labels = ("pod labels (k8s.podLabels*) come only from cri-dockerd's pod sandboxes, read through docker"
              if "docker" in runtimes else
              "no chosen runtime records pod labels (only cri-dockerd does, through docker): k8s.podLabels* are empty")
    log.warning("pod owners and labels: no API server to watch this node's pods (use --kubeconfig, or run ig in "
                "a pod): k8s.owner.kind and k8s.owner.name are empty; %s", labels, extra={"reason": "no_pod_watch"})


LIST_WAIT = 5.0   # seconds `ig trace` and `ig snapshot` wait for the first list of the pods


def pod_watch_of(containers):
    """The collection's pod watch, None when it has none."""
    from .sources.pod_watch import PodWatch

    return next((s for s in containers.sources if isinstance(s, PodWatch)), None)


def use_pod_columns(containers, columns: list[str], runtimes: tuple[str, ...],
                    named: list[str] | None = None) -> None:
    """Before the collection starts: hold the pod columns among `columns`; without a watch, say
    what is missing when some of `named` (default: `columns`) are pod columns."""
    containers.pods.want(columns)
    if pod_watch_of(containers) is None:
        say_missing_source(columns if named is None else named, runtimes)


def wait_for_pods(containers) -> None:
    """`ig trace` and `ig snapshot`: rows come after the pods' first list (or LIST_WAIT seconds)."""
    watch = pod_watch_of(containers)
    if watch is not None:
        watch.listed.wait(LIST_WAIT)
