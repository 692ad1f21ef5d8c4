"""Container enrichment: which container (and Kubernetes pod) each row came from.

The names below load on first use, so that `igcore.containers.cgroups` can be imported on its own
while ig starts (igcore.main), without the collection and everything it needs.
"""

from __future__ import annotations

import importlib

_MODULE_OF = {
    "ContainerCollection": ".collection", "Enricher": ".enricher", "Container": ".model",
    "RuntimeOptions": ".model", "Windows": ".model", "HOST": ".resolver", "PENDING": ".resolver",
    "Outcome": ".resolver", "Resolution": ".resolver",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name], __name__), name)
    globals()[name] = value
    return value
