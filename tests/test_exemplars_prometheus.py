"""Exemplars end to end (docs/config.md, Exemplars): a real `ig prometheus --exemplars` on trace exec,
a process this test runs, and Debian's Prometheus with exemplar storage reading them back, of
metrics computed in user space and of a counter computed in the kernel."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

from .fixtures.prometheus import write_config
from .fixtures.waiting import wait_until

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def config(run_id: str, comm: str) -> str:
    # Only this test's program counts: in user space (a regular expression keeps a metric there),
    # and in the kernel (an exact comm).
    selector = f"selector: ['comm:~{run_id}']"
    return (f"{{metrics_name: ex, metrics: ["
            f"{{name: execs, type: counter, category: trace, gadget: exec, labels: [comm], {selector}}}, "
            f"{{name: exec_results, type: histogram, category: trace, gadget: exec, field: retval, {selector}, "
            f"bucket: {{type: linear, min: 0, max: 2}}}}, "
            f"{{name: kexecs, type: counter, category: trace, gadget: exec, selector: ['comm:{comm}']}}]}}")


def test_prometheus_returns_the_pid_and_comm_of_the_process_behind_a_count(
        run_ig, prometheus_server, require_bpf, tmp_path):
    run_id = uuid.uuid4().hex[:6]
    comm = f'x"{run_id}\\'          # a command name with a quote and a backslash (15 characters at most)
    program = tmp_path / comm
    shutil.copy("/bin/true", program)
    ig = run_ig(config(run_id, comm), "--host", "--exemplars")
    assert ig.value("ig_metric_aggregation", metric="execs", path="user") == 1
    assert ig.value("ig_metric_aggregation", metric="kexecs", path="kernel") == 1
    prom = prometheus_server(write_config(tmp_path / "prometheus.yml", ig.address),
                             "--enable-feature=exemplar-storage")
    start = time.time()

    for _ in range(4):   # the last one's pid is the exemplar's
        last = subprocess.Popen([str(program)])
        assert last.wait() == 0
    assert ig.wait_for("execs_total", 4, comm=comm) == 4, ig.text()
    assert ig.wait_for("kexecs_total", 4) == 4, ig.text()

    line = next(line for line in ig.text(OPENMETRICS).splitlines() if line.startswith("execs_total{"))
    assert f'pid="{last.pid}"' in line and 'comm="x\\"' in line, line

    def exemplars(query: str) -> list[dict]:
        data = prom.api("query_exemplars", query=query, start=start - 60, end=time.time() + 60)
        return [e for series in data for e in series["exemplars"]]

    found = wait_until(lambda: [e for e in exemplars("execs_total") if e["labels"].get("pid") == str(last.pid)],
                       lambda: f"Prometheus to store the exemplar of pid {last.pid}: {exemplars('execs_total')}",
                       timeout=60)
    # Prometheus 2.42 keeps an exemplar's label values as the scrape wrote them, escaped (it unescapes
    # series labels only): docs/config.md, Exemplars, says so.
    escaped = comm.replace("\\", "\\\\").replace('"', '\\"')
    assert found[0]["labels"]["comm"] == escaped and found[0]["value"] == "1"
    assert start - 1 < found[0]["timestamp"] < time.time()   # the exec's own time, in seconds

    bucket = wait_until(lambda: [e for e in exemplars("exec_results_bucket") if e["labels"].get("pid") == str(last.pid)],
                        lambda: f"a bucket's exemplar: {exemplars('exec_results_bucket')}", timeout=60)
    assert bucket[0]["labels"]["comm"] == escaped and bucket[0]["value"] == "0"

    # the kernel's counter: the process's pid (the thread group id) from its map entry, no comm
    kernel = wait_until(lambda: [e for e in exemplars("kexecs_total") if e["labels"].get("pid") == str(last.pid)],
                        lambda: f"the kernel counter's exemplar of pid {last.pid}: {exemplars('kexecs_total')}",
                        timeout=60)
    assert kernel[0]["labels"] == {"pid": str(last.pid)} and float(kernel[0]["value"]) >= 1
    assert start - 1 < kernel[0]["timestamp"] < time.time()   # the exec's own time, from the kernel's clock
