"""Column schema: the names users write in selectors and labels, with their kinds."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable



class Kind(str, Enum):
    INT = "int"
    UINT = "uint"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"

    @property
    def numeric(self) -> bool:
        return self in (Kind.INT, Kind.UINT, Kind.FLOAT)

    def default(self):
        """The value a row carries when the column is unknown for it."""
        return {Kind.INT: 0, Kind.UINT: 0, Kind.FLOAT: 0.0, Kind.STR: "", Kind.BOOL: False}[self]


@dataclass(frozen=True)
class KernelField:
    """Where a column's value is at the program's IG_EMIT, for metrics aggregated in the kernel.

    `expr` is a C expression valid at every IG_EMIT of the program (e.g. `ev->uid`); `ctype` its type:
    u8, u16, u32, u64, s8, s16, s32, s64, or char[N] for a NUL-padded string such as comm. A string
    column that names a kernel integer (a DNS qtype) gives its integer type and `values`: the texts
    the row carries for some integers; any other integer reads as its decimal text, as in the row.
    """

    expr: str
    ctype: str
    values: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    description: str = ""
    aliases: tuple[str, ...] = ()
    # Set when the gadget's BPF program knows the value where it emits (see KernelField).
    kernel: KernelField | None = None
    # How `ig trace` and `ig snapshot` show it (docs/plugins.md, Schema): its usual width in
    # characters (None: by its kind), and whether it is left out unless `--columns` names it.
    width: int | None = None
    hidden: bool = False

    def __post_init__(self) -> None:
        if self.width is not None and (type(self.width) is not int or not 1 <= self.width <= MAX_WIDTH):
            raise ValueError(f"column {self.name!r}: width must be an int from 1 to {MAX_WIDTH}, not {self.width!r}")
        if type(self.hidden) is not bool:
            raise ValueError(f"column {self.name!r}: hidden must be True or False, not {self.hidden!r}")


# The widest a column may ask to be shown (a terminal's line is rarely longer).
MAX_WIDTH = 200


# Every gadget carries these (docs/config.md, "Every gadget"); enrichment fills them.
CONTAINER_COLUMNS: tuple[Column, ...] = (
    Column("k8s.node", Kind.STR, "Kubernetes node name"),
    Column("k8s.namespace", Kind.STR, "Kubernetes namespace of the pod", width=16),
    Column("k8s.pod", Kind.STR, "Kubernetes pod name", width=24),
    Column("k8s.container", Kind.STR, "Kubernetes container name, else the runtime's container name", width=20),
    Column("runtime.runtimeName", Kind.STR, "container runtime (docker, containerd, cri-o, runc)"),
    Column("runtime.containerId", Kind.STR, "container id"),
    Column("runtime.containerName", Kind.STR, "container name as the runtime knows it"),
    Column("runtime.containerImageName", Kind.STR, "container image name"),
)
CONTAINER_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in CONTAINER_COLUMNS)


@dataclass(frozen=True)
class Schema:
    """An ordered set of columns; lookup by name or alias, case-insensitive."""

    columns: tuple[Column, ...]
    _index: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, Column] = {}
        for col in self.columns:
            for key in (col.name, *col.aliases):
                low = key.lower()
                if low in index:
                    raise ValueError(f"column name {key!r} is defined twice")
                index[low] = col
        object.__setattr__(self, "_index", index)

    @classmethod
    def with_container_columns(cls, own: Iterable[Column]) -> "Schema":
        """A gadget's own columns followed by the container columns."""
        own = tuple(own)
        names = {c.name.lower() for c in own}
        return cls(own + tuple(c for c in CONTAINER_COLUMNS if c.name.lower() not in names))

    def get(self, name: str) -> Column | None:
        return self._index.get(name.lower())

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._index

    def __iter__(self):
        return iter(self.columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def closest(self, name: str) -> str | None:
        """The column name nearest to a misspelt one, for 'did you mean' hints."""
        keys = {c.name.lower(): c.name for c in self.columns}
        for c in self.columns:
            for a in c.aliases:
                keys.setdefault(a.lower(), a)
        match = difflib.get_close_matches(name.lower(), list(keys), n=1, cutoff=0.6)
        return keys[match[0]] if match else None

    def defaults(self) -> dict:
        """A row with every column at its default value."""
        return {c.name: c.kind.default() for c in self.columns}
