"""YAML 1.2 parsing for configs, as Go's yaml.v3 reads them in the original tool.

YAML 1.1 (PyYAML's default) would read `k8s.namespace: no` as false, `0755` as octal and `1e5` as a
string; a key written twice would silently keep the last value. Nesting is bounded: a config needs
five levels, and PyYAML's composer recurses once per level, so a hostile file 500 levels deep
would otherwise end in a RecursionError.
"""

from __future__ import annotations

import re

import yaml

from ..errors import ConfigError
from ..quoting import quoted
from .text import one_line

# Far above what a config needs (about 5), far below Python's recursion limit.
MAX_NESTING = 64


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars, no duplicate keys and bounded nesting."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_NESTING} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue  # unhashable keys: the base class reports them
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {quoted(str(key))} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml12_resolvers() -> None:
    replaced = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
    _Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in replaced]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    number = r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
    scalars = (
        ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
        ("int", r"[-+]?[0-9]+", "-+0123456789"),
        ("float", number, "-+0123456789."),
    )
    for tag, pattern, first in scalars:
        _Loader.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", re.compile(f"^(?:{pattern})$"), list(first))
    _Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _construct_int(loader: _Loader, node) -> int:
    # Plain decimal digits are decimal: YAML 1.1's constructor would read 0755 as octal.
    text = loader.construct_scalar(node)
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    return yaml.SafeLoader.construct_yaml_int(loader, node)  # an explicit !!int 0x10 and such


_yaml12_resolvers()


def parse_yaml(text: str, origin: str) -> object:
    """The YAML document in `text`; ConfigError (one line naming `origin`) for anything wrong."""
    if not text.strip():
        raise ConfigError(f"{origin}: the config is empty")
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"{origin}: invalid YAML {_yaml_reason(exc)}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a tagged scalar such as `!!int x`
        raise ConfigError(f"{origin}: invalid YAML: {one_line(str(exc))}") from None


def _yaml_reason(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = "; ".join(one_line(p) for p in (exc.problem, exc.context) if p)
    return f"{where}: {what}" if where else f": {what}"
