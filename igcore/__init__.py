"""ig: kernel events captured with eBPF, served as Prometheus metrics."""

from importlib import metadata

from .hookspecs import hookimpl

__all__ = ["hookimpl", "__version__"]


def _installed_version() -> str:
    # pyproject.toml is the one place the version is written; `ig --version` and ig_info read it here
    try:
        return metadata.version("igcore")
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


__version__ = _installed_version()
