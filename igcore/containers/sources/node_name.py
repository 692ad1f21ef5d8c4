"""The node's name (`k8s.node`), as a source: a fact about every container on this node."""

from __future__ import annotations

from .base import EVERY_CONTAINER, SourceSink


class NodeNameSource:
    name = "node"

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name

    def start(self, sink: SourceSink) -> None:
        sink.report(self.name, EVERY_CONTAINER, {"node_name": self.node_name})

    def refresh(self) -> None:
        pass

    def stop(self) -> None:
        pass
