"""YAML 1.2 parsing for configs, as Go's yaml.v3 reads them in the original tool.

YAML 1.1 (PyYAML's default) would read `k8s.namespace: no` as false, `0755` as octal and `1e5` as a
string; a key written twice would silently keep the last value.

libyaml parses when PyYAML has it (its wheels do): the pure-Python parser takes about 2 ms per
metric, so a config of 10,000 metrics would take 20 s to check. When libyaml finds an error, the
pure-Python parser reads the text again and decides, so what is accepted and the wording of YAML
errors do not depend on which parser is installed. Documents of plain tags only are built by a
lean constructor of their own (`_construct_plain`), PyYAML's for anything else. libyaml stops at
1000 levels of nesting; the pure-Python composer recurses once per level, and a RecursionError
there is reported as nesting too deep.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import ConfigError
from ..quoting import quoted
from .text import one_line

_MERGE_TAG = "tag:yaml.org,2002:merge"


# What _Yaml12 is mixed into, for the type checker (at run time it sits before the loader in the MRO).
if TYPE_CHECKING:
    _LoaderBase = yaml.SafeLoader
else:
    _LoaderBase = object


class _Yaml12(_LoaderBase):
    """Mixed into a safe loader: YAML 1.2 scalars (resolvers set below) and no duplicate keys."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._plain_tags: dict[str, str] = {}

    def resolve(self, kind, value, implicit):
        # A plain scalar's tag depends on its text alone (no path resolvers), and a config repeats
        # the same words (counter, trace, exec, the keys) thousands of times: try each regex once.
        if kind is yaml.ScalarNode and implicit[0]:
            tag = self._plain_tags.get(value)
            if tag is None:
                tag = self._plain_tags[value] = super().resolve(kind, value, implicit)
            return tag
        return super().resolve(kind, value, implicit)

    def construct_mapping(self, node, deep=False):
        if any(k.tag == _MERGE_TAG for k, _ in node.value):
            self._check_duplicates(node, deep)  # merged keys may repeat; only the written ones count
            return super().construct_mapping(node, deep=deep)
        mapping = super().construct_mapping(node, deep=deep)
        if len(mapping) < len(node.value):  # some key came twice: find it (rare, so the scan is here)
            self._check_duplicates(node, deep)
        return mapping

    def _check_duplicates(self, node, deep: bool) -> None:
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


class _PureLoader(_Yaml12, yaml.SafeLoader):
    pass


# Values (scalars, lists, mappings) a config may hold once its aliases are expanded: a 1 MiB file
# without aliases holds fewer than 600,000.
MAX_VALUES = 1_000_000

_HAVE_LIBYAML = hasattr(yaml, "CSafeLoader")
_FastBase: Any = yaml.CSafeLoader if _HAVE_LIBYAML else yaml.SafeLoader


class _FastLoader(_Yaml12, _FastBase):
    pass


def _yaml12_resolvers(loader: type[_Yaml12]) -> None:
    replaced = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
    loader.yaml_implicit_resolvers = {
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
        loader.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", re.compile(f"^(?:{pattern})$"), list(first))
    loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _construct_int(loader, node) -> int:
    # Plain decimal digits are decimal: YAML 1.1's constructor would read 0755 as octal.
    text = loader.construct_scalar(node)
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)  # an explicit !!int 0x10 and such


_yaml12_resolvers(_PureLoader)
_yaml12_resolvers(_FastLoader)


def parse_yaml(text: str, origin: str) -> object:
    """The YAML document in `text`; ConfigError (one line naming `origin`) for anything wrong."""
    if not text.strip():
        raise ConfigError(f"{origin}: the config is empty")
    try:
        return _load(_FastLoader, text, origin)
    except (yaml.YAMLError, ValueError) as fast_error:
        if not _HAVE_LIBYAML:
            raise ConfigError(f"{origin}: invalid YAML{_reason(fast_error)}") from None
        error = fast_error
    try:  # the pure-Python parser decides, and words the error
        return _load(_PureLoader, text, origin)
    except (yaml.YAMLError, ValueError) as exc:
        error = exc
    except RecursionError:
        raise ConfigError(f"{origin}: invalid YAML: nested too deeply") from None
    raise ConfigError(f"{origin}: invalid YAML{_reason(error)}") from None


def _load(loader_class: type, text: str, origin: str) -> object:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if "&" in text and "*" in text:  # no anchor or no alias: nothing can expand (and the walk costs)
            _check_expansion(node, origin)
        if node is None:
            return None
        data = _construct_plain(loader, node)
        return loader.construct_document(node) if data is _NOT_PLAIN else data
    finally:
        loader.dispose()


_NOT_PLAIN = object()
_TAG = "tag:yaml.org,2002:"
_SCALARS = {
    _TAG + "str": lambda loader, node: node.value,
    _TAG + "null": lambda loader, node: None,
    _TAG + "bool": lambda loader, node: yaml.constructor.SafeConstructor.construct_yaml_bool(loader, node),
    _TAG + "int": lambda loader, node: _construct_int(loader, node),
    _TAG + "float": lambda loader, node: yaml.constructor.SafeConstructor.construct_yaml_float(loader, node),
}
_COLLECTIONS = {_TAG + "seq", _TAG + "map"}


def _construct_plain(loader, root) -> object:
    """What `construct_document` gives, for a document of plain tags only, in half its time.

    PyYAML's constructor runs a generator per collection and a dispatch per node; a config uses
    only strings, numbers, booleans, nulls, lists and mappings. Anything else (another tag, a
    merge key, a key that is a collection, an alias inside itself) returns _NOT_PLAIN, and the
    caller uses PyYAML's constructor, so the result and the errors are PyYAML's either way.
    """
    built: dict[int, object] = {}  # by node id: an alias gives the same object, as PyYAML does
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_built = stack.pop()
        key = id(node)
        if key in built:
            continue
        if children_built:
            open_nodes.discard(key)
            if isinstance(node, yaml.SequenceNode):
                built[key] = [built[id(n)] for n in node.value]
                continue
            mapping = {}
            for k, v in node.value:
                item = built[id(k)]
                if isinstance(item, (list, dict)):
                    return _NOT_PLAIN
                mapping[item] = built[id(v)]
            if len(mapping) < len(node.value):
                loader._check_duplicates(node, True)
            built[key] = mapping
            continue
        scalar = _SCALARS.get(node.tag) if isinstance(node, yaml.ScalarNode) else None
        if scalar is not None:
            built[key] = scalar(loader, node)
        elif node.tag in _COLLECTIONS and key not in open_nodes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node) if id(c) not in built)
        else:
            return _NOT_PLAIN
    return built[id(root)]


def _check_expansion(root, origin: str) -> None:
    """Refuse aliases that expand a small text into a huge value (or into itself).

    An alias is a reference, so `[*m, *m, ...]` costs nothing to parse, but every later step (the
    model's validation, binding) walks each copy: 20,000 aliases of a metric with 5,000 labels make
    10**8 values out of 85 kB. Sizes are counted over the node graph once per node (linear).
    """
    size: dict[int, int] = {}
    stack: list[tuple[object, bool]] = [(root, False)] if root is not None else []
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            if size[key] > MAX_VALUES:
                raise ConfigError(f"{origin}: aliases expand the config to more than {MAX_VALUES:,} values")
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise ConfigError(f"{origin}: invalid YAML: an alias refers to a value that contains it")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []


def _reason(exc: Exception) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        return " " + _yaml_reason(exc)
    return f": {one_line(str(exc))}"  # ValueError: a tagged scalar such as `!!int x`


def _yaml_reason(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = "; ".join(one_line(p) for p in (exc.problem, exc.context) if p)
    return f"{where}: {what}" if where else f": {what}"
