"""The complete minimal plugin of docs/plugins.md works as written, on the real kernel."""

from __future__ import annotations

import importlib
import re
import subprocess
import threading
from pathlib import Path

from igcore.gadgets import GadgetContext
from igcore.plugins import load_catalog

ROOT = Path(__file__).resolve().parents[1]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / "docs" / "plugins.md").read_text(), flags=re.S)


def test_hello_plugin_from_the_guide(tmp_path, require_bpf, monkeypatch):
    package = tmp_path / "ig_gadget_hello"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "hello.bpf.c").write_text(_blocks("c")[0])
    (package / "plugin.py").write_text(next(b for b in _blocks("python") if "HelloGadget" in b))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("ig_gadget_hello.plugin")

    spec = load_catalog(extra_plugins=(module,)).get("trace", "hello")
    assert spec is not None and spec.columns.get("comm").kind.value == "str"
    rows, got = [], threading.Event()

    def sink(batch):
        rows.extend(batch)
        if any(r["comm"] == "ig-hello-probe" for r in rows):
            got.set()

    gadget = spec.factory(GadgetContext(host=True))
    gadget.start(sink)
    try:
        probe = tmp_path / "ig-hello-probe"
        probe.symlink_to("/bin/true")
        subprocess.run([str(probe)], check=True)
        assert got.wait(10), "no exit event for the probe process"
    finally:
        gadget.stop()
    row = next(r for r in rows if r["comm"] == "ig-hello-probe")
    assert row["pid"] > 0 and row["cgroup_id"] > 0
    assert gadget.stats.events_received >= 1 and gadget.stats.events_lost == 0
