"""docs/troubleshooting.md quotes what ig prints: each symptom is made for real here (a port taken,
a non-root user, an unreachable runtime socket, kernel headers or tracefs hidden in a private mount
namespace) and the lines the doc shows must be in ig's output."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.igrun import free_port
from tests.fixtures.nobody import as_nobody
from tests.fixtures.requirements import missing

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "troubleshooting.md").read_text()
IG = str(Path(sys.executable).with_name("ig"))
EXEC_ONLY = "metrics_name: t\nmetrics:\n  - {name: execs, type: counter, category: trace, gadget: exec}\n"
# One message, one line: wide enough that the log handler does not wrap it
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "1000"}


def doc_line(start: str) -> str:
    """The one line of the doc that starts with `start` (it must be there, once)."""
    lines = [line for line in DOC.splitlines() if line.startswith(start)]
    assert len(lines) == 1, (start, lines)
    return lines[0]


def printed(output: str, line: str) -> bool:
    """`line` is in `output`, the kernel release in module paths aside."""
    release = re.compile(r"/lib/modules/[^/]+/")
    return release.sub("/lib/modules/R/", line) in release.sub("/lib/modules/R/", output)


def run(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT, **kw)


def test_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(IG, "prometheus", "--metrics-listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 1
    expected = doc_line("Error: cannot listen on").replace("127.0.0.1:2223", f"127.0.0.1:{port}")
    assert result.stderr.strip() == expected


@pytest.fixture
def nobody(require_bpf):
    return as_nobody()


def test_not_root(nobody):
    needs_root = "Error: ig needs root to load eBPF programs (run it as root)"
    assert DOC.count(needs_root + "\n") == 2   # shown for both commands
    served = run(*nobody, IG, "prometheus", "--config", "@examples/selectors.yaml", "--metrics-listen-address",
                 f"127.0.0.1:{free_port()}")
    assert (served.returncode, served.stderr) == (1, needs_root + "\n")
    traced = run(*nobody, IG, "trace", "exec", timeout=60)
    assert (traced.returncode, traced.stderr) == (1, needs_root + "\n")


def test_runtime_socket_that_refuses(run_ig, synth, tmp_path):
    """A socket file nobody listens on (docker stopped): the doc's warning, with the path given."""
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))
        ig = run_ig("metrics_name: t\nmetrics:\n  - {name: e, type: counter, category: trace, gadget: synth}\n",
                    "--runtimes", "docker", "--docker-socketpath", str(path))
        expected = doc_line("docker: not reachable at").replace("/run/docker.sock", str(path))
        assert printed(" ".join(ig.output().split()), expected)


def test_no_runtime_reachable(run_ig, synth):
    ig = run_ig("metrics_name: t\nmetrics:\n  - {name: e, type: counter, category: trace, gadget: synth}\n",
                "--runtimes", "docker", "--docker-socketpath", "/run/nope.sock")
    assert printed(" ".join(ig.output().split()), doc_line("no container runtime found or reachable"))


def test_no_pod_source(run_ig, synth):
    """A config labelled by a pod's owner, on a host without an API server: the doc's line."""
    ig = run_ig("metrics_name: t\nmetrics:\n  - {name: e, type: counter, category: trace, gadget: synth, "
                "labels: [k8s.owner.name]}\n", "--runtimes", "docker", "--docker-socketpath", "/run/nope.sock")
    assert printed(" ".join(ig.output().split()), doc_line("pod owners and labels: no API server"))


def _in_private_mounts(script: str, config: str) -> subprocess.CompletedProcess:
    """`script` (mounts changed in a mount namespace of its own), then ig, which fails to compile."""
    if shutil.which("unshare") is None:
        missing("unshare (util-linux) is not installed")
    command = f'{script} && exec "$0" prometheus --config "$1" --metrics-listen-address "$2"'
    return run("unshare", "--mount", "--propagation", "private", "sh", "-c", command, IG, config,
               f"127.0.0.1:{free_port()}", timeout=180)


def test_kernel_headers_missing(require_bpf):
    result = _in_private_mounts("mount -t tmpfs none /lib/modules", EXEC_ONLY)
    assert result.returncode == 1
    for start in ("chdir(/lib/modules/", "Unable to find kernel headers.", "Error: gadget trace exec failed to start: the kernel or bcc"):
        assert printed(result.stdout + result.stderr, doc_line(start)), start   # bcc writes to both


def test_tracefs_not_mounted(require_bpf):
    hide = " && ".join(f"{{ ! mountpoint -q {p} || umount {p}; }}"
                       for p in ("/sys/kernel/debug/tracing", "/sys/kernel/tracing", "/sys/kernel/debug"))
    result = _in_private_mounts(hide, EXEC_ONLY)
    assert result.returncode == 1
    clang = doc_line("/virtual/main.c:")
    assert clang[clang.index("error:"):] in result.stderr
    assert printed(result.stderr, doc_line("Error: gadget trace exec failed to start: the kernel or bcc"))


def test_check_says_where_metrics_are_computed():
    block = DOC[DOC.index("$ ig prometheus --check --config @examples/selectors.yaml"):]
    block = block[:block.index("```")].splitlines()[1:]
    result = run(IG, "prometheus", "--check", "--config", "@examples/selectors.yaml")
    assert result.returncode == 0 and result.stdout.splitlines() == block


def test_a_refused_selector(tmp_path):
    (tmp_path / "bad.yaml").write_text("metrics_name: t\nmetrics:\n  - {name: m, type: counter, category: trace, "
                                       "gadget: exec, selector: ['comm:!=cat']}\n")
    result = subprocess.run([IG, "prometheus", "--check", "--config", "@bad.yaml"], capture_output=True, text=True,
                            timeout=60, env=ENV, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == doc_line('Error: bad.yaml: metric "m": selector "comm:!=cat"')
    assert result.stderr.strip() in (ROOT / "docs" / "config.md").read_text().splitlines()   # its "Selectors" too


def test_a_running_ig_says_where_metrics_are_computed(require_bpf, run_ig):
    block = DOC[DOC.index("$ curl -s http://127.0.0.1:2223/metrics | grep '^ig_metric_aggregation'"):]
    block = block[:block.index("```")].splitlines()[1:]
    ig = run_ig(f"@{ROOT / 'examples' / 'selectors.yaml'}")
    assert [line for line in ig.text().splitlines() if line.startswith("ig_metric_aggregation")] == block
