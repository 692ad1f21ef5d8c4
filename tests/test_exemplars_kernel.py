"""Exemplars of counters computed in the kernel (docs/config.md, Exemplars): the map value carries
the last event's pid_tgid and time, only with --exemplars and only where the gadget's program runs
in the process's context; without the option the generated C is what it always was."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from prometheus_client.utils import floatToGoString

from igcore.config import load_config_text
from igcore.kernel import place
from igcore.kernel.codegen import generate
from igcore.plugins import load_catalog

from .fixtures.waiting import wait_until

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
FIXTURES = Path(__file__).parent / "fixtures" / "kernel_c"
# A counter, a counter of a field, a classic and a native histogram, with selectors and labels:
# every kind of value the kernel keeps (trace exec's program) and trace dns's socket filter.
CONFIG = """
metrics_name: kc
metrics:
  - {name: execs, type: counter, category: trace, gadget: exec, labels: [comm], selector: ["uid:>0"]}
  - {name: exec_uids, type: counter, category: trace, gadget: exec, field: uid, labels: [retval]}
  - {name: exec_pids, type: histogram, category: trace, gadget: exec, field: pid, bucket: {type: exp2, min: 0, max: 22}}
  - {name: exec_npids, type: histogram, category: trace, gadget: exec, field: pid, bucket: {type: native, schema: 2}}
  - {name: queries, type: counter, category: trace, gadget: dns, labels: [qtype]}
"""


def generated(gadget: str, **options) -> str:
    config = load_config_text(CONFIG, "test", load_catalog())
    metrics = [(bound, place(bound)) for bound in config.metrics if bound.spec.name == gadget]
    assert metrics and all(placement.in_kernel for _, placement in metrics), metrics
    return generate(metrics[0][0].spec, metrics, 1024, **options).code


def test_without_exemplars_the_generated_c_is_what_it_was():
    """The default path costs nothing: byte for byte the C of before exemplars existed in the kernel
    (tests/fixtures/kernel_c/exec.c, written by ig before them)."""
    expected = (FIXTURES / "exec.c").read_text()
    assert generated("exec") == expected
    assert generated("exec", exemplars=False) == expected


def test_with_exemplars_counters_and_histograms_carry_the_process_and_time_where_the_program_knows_them():
    code = generated("exec", exemplars=True)
    assert "struct ig_cval { u64 n; u64 pid_tgid; u64 ns; };" in code
    assert "u64 sum; u64 seen; u64 tgid_bucket; u64 ns; };" in code   # one slot per series, not per bucket
    assert code.count("bpf_get_current_pid_tgid()") == 2 and code.count("v->ns = bpf_ktime_get_ns();") == 2
    # a native histogram keeps its value as it was
    assert "struct ig_nval { u64 count; u64 sum; };" in code
    # a socket filter has no process: trace dns's C is the same with the option
    assert "struct ig_cval" not in generated("dns", exemplars=True)
    assert generated("dns", exemplars=True) == generated("dns")


def exemplar_of(text: str, series: str) -> tuple[dict[str, str], float, float]:
    """(labels, value, timestamp) of the exemplar of the OpenMetrics sample line starting with `series`."""
    line = next(line for line in text.splitlines() if line.startswith(series))
    found = re.search(r" # \{(.*)\} (\S+) (\S+)$", line)
    assert found, line
    labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', found.group(1)))
    return labels, float(found.group(2)), float(found.group(3))


def test_a_kernel_counter_names_the_pid_of_the_process_behind_its_latest_count(require_bpf, run_ig, tmp_path):
    program = tmp_path / ("igx" + uuid.uuid4().hex[:10])
    shutil.copy("/bin/true", program)
    comm = program.name
    selector = f"selector: ['comm:{comm}']"
    ig = run_ig(f"{{metrics_name: kx, metrics: [{{name: execs, type: counter, category: trace, gadget: exec, "
                f"labels: [comm], {selector}}}, {{name: exec_pids, type: histogram, category: trace, gadget: exec, "
                f"field: pid, {selector}, bucket: {{type: exp2, min: 0, max: 23}}}}]}}", "--host", "--exemplars")
    assert ig.value("ig_metric_aggregation", metric="execs", path="kernel") == 1
    assert ig.value("ig_metric_aggregation", metric="exec_pids", path="kernel") == 1

    for _ in range(3):
        assert subprocess.run([str(program)]).returncode == 0
    assert ig.wait_for("execs_total", 3, comm=comm) == 3   # the pulls so far counted all three
    start = time.time()
    last = subprocess.Popen([str(program)])
    assert last.wait() == 0
    assert ig.wait_for("execs_total", 4, comm=comm) == 4

    labels, value, when = exemplar_of(ig.text(OPENMETRICS), f'execs_total{{comm="{comm}"}}')
    # the thread group id, as the gadget's pid column; no comm (not in the map); a host process has
    # no container
    assert labels == {"pid": str(last.pid)}
    assert value == 1   # what the series moved by in the pull that saw the exec
    assert start - 0.5 < when < time.time()   # the event's own time, from the kernel's clock

    # the histogram of pids: the exemplar of the bucket its pid fell in, valued at the pid
    le = floatToGoString(2 ** (last.pid - 1).bit_length())   # exp2: the bucket (2**(k-1), 2**k]
    labels, value, when = exemplar_of(ig.text(OPENMETRICS), f'exec_pids_bucket{{le="{le}"}}')
    assert labels == {"pid": str(last.pid)} and value == last.pid
    assert start - 0.5 < when < time.time()


def test_a_kernel_counter_without_the_option_has_no_exemplar(require_bpf, run_ig, tmp_path):
    program = tmp_path / ("igx" + uuid.uuid4().hex[:10])
    shutil.copy("/bin/true", program)
    ig = run_ig(f"{{metrics_name: kx, metrics: [{{name: execs, type: counter, category: trace, gadget: exec, "
                f"labels: [comm], selector: ['comm:{program.name}']}}]}}", "--host")
    assert subprocess.run([str(program)]).returncode == 0
    assert ig.wait_for("execs_total", 1, comm=program.name) == 1
    line = wait_until(lambda: [line for line in ig.text(OPENMETRICS).splitlines() if line.startswith("execs_total{")],
                      lambda: "the series", timeout=10)[0]
    assert " # " not in line, line


def test_a_kernel_counter_names_the_container_of_its_latest_count(require_bpf, run_ig, docker, busybox_image):
    """The container labels come from the entry's key, resolved as the series' labels are."""
    comm = "busybox" + uuid.uuid4().hex[:8]   # busybox named busybox* runs its first argument as the applet
    name = f"ig-kex-{uuid.uuid4().hex[:8]}"
    ig = run_ig(f"{{metrics_name: kx, metrics: [{{name: execs, type: counter, category: trace, gadget: exec, "
                f"labels: [comm], selector: ['comm:{comm}']}}]}}", "--exemplars")
    # the container's main process execs the copy: its pid on the host is the container's
    docker.run("--network", "none", busybox_image, "sh", "-c", f"cp /bin/busybox /tmp/{comm}; exec /tmp/{comm} sleep 300",
               name=name, detach=True)
    assert ig.wait_for("execs_total", 1, comm=comm) == 1
    pid = docker.inspect(name, "{{.State.Pid}}")
    labels, value, _ = exemplar_of(ig.text(OPENMETRICS), f'execs_total{{comm="{comm}"}}')
    assert labels == {"pid": pid, "k8s_container": name} and value == 1
