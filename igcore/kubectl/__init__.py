"""Kubernetes mode: the node agent's manifests and the `kubectl gadget` plugin."""
