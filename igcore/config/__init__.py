"""The metrics config (docs/config.md): YAML in, validated metrics bound to installed gadgets out.

One module per job: `source` reads the text (bounded), `yaml12` parses it as YAML 1.2, `model`
checks its shape with pydantic, `explain` turns pydantic's errors into sentences, `bind` ties each
metric to its gadget with the `checks` that need the catalog. Every problem, whatever raised it,
becomes ONE ConfigError line naming the origin, the metric and the key.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..plugins import GadgetCatalog
from .bind import BoundMetric, Config, bind_config
from .checks import RESERVED_PREFIX
from .model import BucketConfig, FileConfig, MetricConfig
from .source import INLINE_ORIGIN, MAX_CONFIG_BYTES, read_config_file, read_source
from .text import one_line
from .yaml12 import parse_yaml

__all__ = [
    "BoundMetric", "BucketConfig", "Config", "ConfigError", "FileConfig", "INLINE_ORIGIN", "MAX_CONFIG_BYTES",
    "MetricConfig", "RESERVED_PREFIX", "bind_config", "load_config", "load_config_text", "read_config_file",
]


def load_config(source: str, catalog: GadgetCatalog) -> Config:
    """`@path` reads a YAML file; anything else is YAML text. Raises ConfigError, one line, for anything."""
    origin = source[1:] if source.startswith("@") else INLINE_ORIGIN
    try:
        origin, text = read_source(source)
    except ConfigError:
        raise
    except Exception as exc:
        raise _one_line(origin, exc) from None
    return load_config_text(text, origin, catalog)


def load_config_text(text: str, origin: str, catalog: GadgetCatalog) -> Config:
    """YAML text already read (by `read_source`, or by a watcher through `read_config_file`), with
    the name errors should give as its origin."""
    try:
        return bind_config(parse_yaml(text, origin), catalog, origin)
    except ConfigError:
        raise
    except Exception as exc:  # whatever a hostile config makes a library raise
        raise _one_line(origin, exc) from None


def _one_line(origin: str, exc: Exception) -> ConfigError:
    # RecursionError, MemoryError, an ArithmeticError: still one line, never a traceback.
    return ConfigError(f"{origin}: cannot load the config: {type(exc).__name__}: {one_line(str(exc))}")
