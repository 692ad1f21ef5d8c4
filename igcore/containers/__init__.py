"""Container enrichment: which container (and Kubernetes pod) each row came from."""

from .enricher import Enricher
from .model import Container, RuntimeOptions
from .registry import HOST, PENDING, ContainerRegistry

__all__ = ["Container", "ContainerRegistry", "Enricher", "HOST", "PENDING", "RuntimeOptions"]
