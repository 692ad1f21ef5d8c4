"""Container enrichment: which container (and Kubernetes pod) each row came from."""

from .collection import ContainerCollection
from .enricher import Enricher
from .model import Container, RuntimeOptions, Windows
from .resolver import HOST, PENDING, Outcome, Resolution

__all__ = ["Container", "ContainerCollection", "Enricher", "HOST", "Outcome", "PENDING", "Resolution",
           "RuntimeOptions", "Windows"]
