"""What a re-deploy keeps: the operator's choices, written into the DaemonSet they shaped.

`kubectl gadget deploy` and `kubectl gadget prometheus --metrics-path` re-render the DaemonSet;
what an earlier deploy was told (endpoint, extra arguments, web config, NetworkPolicy, PodMonitor) is read back
from this annotation, so an option not given again is kept, never silently dropped
(docs/guide.md, "Deploy the agents"). The annotation is cluster data: it is checked, not trusted.
"""

from __future__ import annotations

import json

KEPT_ANNOTATION = "kubectl-gadget/deploy-values"
MAX_ANNOTATION_BYTES = 64 * 1024

# field -> the JSON types it may hold
_FIELDS = {
    "listen_address": (str,),
    "metrics_path": (str,),
    "extra_args": (list,),
    "web_config": (bool,),
    "tls": (bool,),
    "metrics_from": (str, type(None)),
    "pod_monitor": (bool,),
}


def kept_annotation(values) -> str:
    return json.dumps({name: list(v) if isinstance(v := getattr(values, name), tuple) else v for name in _FIELDS},
                      sort_keys=True, separators=(",", ":"))


def read_kept(text: str | None) -> dict:
    """The Values fields the annotation holds; ValueError when it is not what deploy writes."""
    if text is None:
        return {}
    if len(text) > MAX_ANNOTATION_BYTES:
        raise ValueError("too long")
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    kept: dict[str, object] = {}
    for name, value in doc.items():
        if name not in _FIELDS:
            raise ValueError(f"unknown field {str(name)[:40]!r}")
        if not isinstance(value, _FIELDS[name]):
            raise ValueError(f"{name} has the wrong type")
        if name == "extra_args" and isinstance(value, list):   # a list, as _FIELDS says
            if not all(isinstance(arg, str) for arg in value):
                raise ValueError("extra_args holds a non-string")
            value = tuple(value)
        kept[name] = value
    return kept
