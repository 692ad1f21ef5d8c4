"""What ig says about itself: `ig --version`, `ig prometheus --print-default-config`, and that
`metrics_name` names nothing that is exposed (docs/config.md, the paragraphs after the first example)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path


IG = str(Path(sys.executable).with_name("ig"))
DEFAULT = Path(__file__).resolve().parents[1] / "igcore" / "data" / "default.yaml"


def ig(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([IG, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_version_is_the_installed_packages():
    result = ig("--version")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == f"ig {metadata.version('igcore')}\n"


def test_ig_info_reports_the_same_version(run_ig, synth):
    version = ig("--version").stdout.split()[1]
    running = run_ig("metrics_name: v\nmetrics:\n  - {name: e, type: counter, category: trace, gadget: synth}\n", "--host")
    assert running.value("ig_info", version=version) == 1


def test_print_default_config_prints_the_built_in_file_and_it_checks(tmp_path):
    result = ig("prometheus", "--print-default-config")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == DEFAULT.read_text()
    copy = tmp_path / "config.yaml"
    copy.write_text(result.stdout)
    checked = ig("prometheus", "--check", "--config", f"@{copy}")
    assert checked.returncode == 0, checked.stderr


def test_print_default_config_wins_over_other_options():
    result = ig("prometheus", "--config", "@/nonexistent.yaml", "--print-default-config")
    assert result.returncode == 0 and result.stdout == DEFAULT.read_text()


def test_metrics_name_appears_in_no_metric_name_nor_label(run_ig, synth):
    feed, _ = synth
    marker = f"mn{uuid.uuid4().hex[:10]}"
    running = run_ig(f"metrics_name: {marker}\nmetrics:\n"
                     "  - {name: events, type: counter, category: trace, gadget: synth, labels: [comm]}\n", "--host")
    feed.send({"comm": "cat"})
    assert running.wait_for("events_total", 1, comm="cat") == 1
    for accept in (None, "application/openmetrics-text; version=1.0.0"):
        assert marker not in running.text(accept)
    assert marker not in running.output()
