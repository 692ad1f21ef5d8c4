"""What the generated code tells trace open's program: the syscall's entry is compiled in only for a
metric that needs what only the entry knows (docs/plugins.md, Kernel columns)."""

import pytest

from igcore.api import KernelField
from igcore.config import load_config_text
from igcore.kernel import KernelProgram, place
from igcore.plugins import load_catalog


@pytest.mark.parametrize("selector, defined", [("path:/etc/hosts", True), ("syscall:openat", True),
                                               ("flagsRaw:0", True), ("uid:0", False), ("err:2", False)])
def test_the_entry_is_compiled_in_only_for_a_metric_that_reads_what_only_it_knows(selector, defined):
    """The generated C defines IG_OPEN_ENTRY (KernelField.needs) exactly when a metric in the kernel
    reads a column only the syscall's entry knows; open.bpf.c otherwise skips the entry."""
    catalog = load_catalog()
    cfg = load_config_text("metrics_name: e\nmetrics:\n  - {name: m, type: counter, category: trace, gadget: open, "
                           f"selector: ['{selector}']}}\n", "test", catalog)
    placement = place(cfg.metrics[0])
    assert placement.in_kernel, placement.reason
    code = KernelProgram(catalog.get("trace", "open"), [(cfg.metrics[0], placement)], ring_needed=False,
                         max_series=10).c_code()
    assert ("#define IG_OPEN_ENTRY 1" in code) is defined


@pytest.mark.parametrize("needs", ["ig_lower", "1ST", "A B", "A;B", "X" * 65])
def test_a_kernel_fields_needs_is_a_macro_name(needs):
    with pytest.raises(ValueError, match="C macro name"):
        KernelField("ev->x", "u8", needs=needs)
