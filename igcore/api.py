"""The plugin API: everything a gadget plugin may import from ig, and nothing else.

A plugin imports from here only (`from igcore.api import ...`); every other module of igcore is
internal and may change between releases. `docs/plugins.md` documents each name.
"""

from .bpf import BpfUnavailable, RingBufferGadget, RingBufferTransport, c_string, compile_program
from .columns import Column, KernelField, Kind, Schema
from .containers.cgroups import cgroup2_mount, id_of, ns_inode, pid_cgroup_path
from .errors import ConfigError, IgError, RuntimeFailure
from .gadgets import (
    Category,
    ContainerKey,
    GadgetContext,
    GadgetStats,
    NetnsAware,
    Row,
    Sink,
    SnapshotGadget,
    StopFlag,
    TraceGadget,
)
from .hookspecs import Register, hookimpl

__all__ = [
    "BpfUnavailable", "RingBufferGadget", "RingBufferTransport", "c_string", "compile_program",
    "Column", "KernelField", "Kind", "Schema",
    "cgroup2_mount", "id_of", "ns_inode", "pid_cgroup_path",
    "ConfigError", "IgError", "RuntimeFailure",
    "Category", "ContainerKey", "GadgetContext", "GadgetStats", "NetnsAware", "Row", "Sink",
    "SnapshotGadget", "StopFlag", "TraceGadget",
    "Register", "hookimpl",
]
