"""Column schema: the names users write in selectors and labels, with their kinds."""

from __future__ import annotations

import difflib
import re
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
    `needs`: a C macro (an identifier of capitals, digits and `_`) that the generated code defines
    as 1 when a metric in the kernel reads the column, so that the program does work only this
    column needs (trace open's syscall entry) only then (docs/plugins.md, Kernel columns).
    """

    expr: str
    ctype: str
    values: tuple[tuple[str, int], ...] = ()
    needs: str = ""

    def __post_init__(self) -> None:
        if self.needs and not _MACRO.fullmatch(self.needs):
            raise ValueError(f"KernelField needs {self.needs!r}: a C macro name of A-Z, 0-9 and _")


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
    # For exemplars (docs/plugins.md, The contract, Schema): name this column in them besides pid,
    # comm and the container; and, on the `timestamp` column, its ns are the kernel's monotonic
    # clock rather than the Unix epoch's.
    exemplar: bool = False
    monotonic: bool = False

    def __post_init__(self) -> None:
        if self.width is not None and (type(self.width) is not int or not 1 <= self.width <= MAX_WIDTH):
            raise ValueError(f"column {self.name!r}: width must be an int from 1 to {MAX_WIDTH}, not {self.width!r}")
        for flag in ("hidden", "exemplar", "monotonic"):
            if type(getattr(self, flag)) is not bool:
                raise ValueError(f"column {self.name!r}: {flag} must be True or False, not {getattr(self, flag)!r}")


# The widest a column may ask to be shown (a terminal's line is rarely longer).
MAX_WIDTH = 200
_MACRO = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


# Every gadget carries these (docs/config.md, "Every gadget"); enrichment fills them.
CONTAINER_COLUMNS: tuple[Column, ...] = (
    Column("k8s.node", Kind.STR, "Kubernetes node name"),
    Column("k8s.namespace", Kind.STR, "Kubernetes namespace of the pod", width=16),
    Column("k8s.pod", Kind.STR, "Kubernetes pod name", width=24),
    Column("k8s.container", Kind.STR, "Kubernetes container name, else the runtime's container name", width=20),
    Column("runtime.runtimeName", Kind.STR, "container runtime, as --runtimes names it"),
    Column("runtime.containerId", Kind.STR, "container id"),
    Column("runtime.containerName", Kind.STR, "container name as the runtime knows it"),
    Column("runtime.containerImageName", Kind.STR, "container image name"),
    Column("k8s.owner.kind", Kind.STR, "kind of the pod's top controller: Deployment (of a ReplicaSet), CronJob "
           "(of a Job), else the pod's own controller (DaemonSet, StatefulSet, ...); empty for a bare pod"),
    Column("k8s.owner.name", Kind.STR, "name of the pod's top controller (see k8s.owner.kind)"),
    Column("k8s.podLabels", Kind.STR, "the pod's labels, key=value sorted and comma-joined"),
)
CONTAINER_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in CONTAINER_COLUMNS)

# `k8s.podLabels.KEY`: the value of one pod label, a column for any label key (docs/config.md, Columns).
POD_LABEL_PREFIX = "k8s.podLabels."
# A Kubernetes label key: an optional DNS-subdomain prefix and "/", then a name of at most 63 characters.
_LABEL_KEY = re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def pod_label_column(name: str) -> Column | None:
    """The column `k8s.podLabels.KEY` for a valid label KEY (the prefix in any case, the key as
    written: label keys are case-sensitive); None for any other name."""
    if name[:len(POD_LABEL_PREFIX)].lower() != POD_LABEL_PREFIX.lower():
        return None
    key = name[len(POD_LABEL_PREFIX):]
    if not _LABEL_KEY.fullmatch(key):
        return None
    return Column(POD_LABEL_PREFIX + key, Kind.STR, f"the value of the pod's label {key}")


# How lists of columns (ig list-gadgets, docs/config.md) show the `k8s.podLabels.KEY` columns.
POD_LABEL_PATTERN = Column(POD_LABEL_PREFIX + "KEY", Kind.STR, "the value of the pod's label KEY, any label key "
                           "(Prometheus label k8s_podLabels_KEY with every character outside [a-zA-Z0-9_] as _, "
                           "e.g. k8s.podLabels.app -> k8s_podLabels_app)")


def by_container(name: str) -> bool:
    """A container column (the pod's labels too): metrics in the kernel get it from the container key."""
    return name in CONTAINER_COLUMN_NAMES or pod_label_key(name) is not None


def pod_label_key(column: str) -> str | None:
    """KEY of a `k8s.podLabels.KEY` column name (canonical, as `pod_label_column` makes it)."""
    return column[len(POD_LABEL_PREFIX):] if column.startswith(POD_LABEL_PREFIX) else None


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
        found = self._index.get(name.lower())
        if found is None and "k8s.podlabels" in self._index:   # a schema with the container columns
            return pod_label_column(name)
        return found

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

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
