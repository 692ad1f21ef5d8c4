"""ig: kernel events captured with eBPF, served as Prometheus metrics."""

from .hookspecs import hookimpl

__all__ = ["hookimpl", "__version__"]

__version__ = "0.1.0"
