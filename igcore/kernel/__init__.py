"""Aggregation inside the kernel: which metrics go there (plan), the C generated for them (codegen,
ctext), and the loaded maps (program). The aggregators that read them are igcore.metrics.kernel."""

from .plan import KERNEL, SNAPSHOT, USER, Placement, place
from .program import KernelProgram

__all__ = ["KERNEL", "SNAPSHOT", "USER", "Placement", "place", "KernelProgram"]
