"""trace signal end to end: `ig trace signal` and `ig prometheus` as users run them, containers included."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from tests.fixtures.igrun import IG

IMAGE = "ig-test-busybox:latest"
# pid 1 of the container: handles USR1, USR2 and HUP (so it lives), sleeps in a loop.
TARGET = "trap : USR1 USR2 HUP; while :; do sleep 1; done"


def started_target(docker, name: str) -> int:
    docker.run("-d", "--network", "none", IMAGE, "sh", "-c", TARGET, name=name, detach=True)
    return int(docker.inspect(name, "{{.State.Pid}}"))


def test_ig_trace_signal_shows_a_containers_kills(live_trace, docker):
    """Without --host: N `kill -USR1` inside a container are exactly N rows with the target's host pid,
    labelled with the container; a SIGHUP after them proves that no further row was on its way."""
    n = 15
    name = f"ig-signal-{uuid.uuid4().hex[:12]}"
    trace = live_trace("signal", "--filter", "signal:~^SIG(USR1|USR2|HUP)$")
    target = started_target(docker, name)
    mine = lambda sig: lambda r: r["k8s.container"] == name and r["signal"] == sig
    # Until the gadget is attached: one USR2 a round.
    trace.until(mine("SIGUSR2"), lambda: docker.cli("exec", name, "sh", "-c", "kill -USR2 1"), timeout=60)
    docker.cli("exec", name, "sh", "-c", f"for i in $(seq {n}); do kill -USR1 1; done; kill -HUP 1")
    assert trace.wait_row(mine("SIGHUP"), timeout=60)
    trace.stop()
    rows = [r for r in trace.rows if r["k8s.container"] == name and r["signal"] == "SIGUSR1"]
    assert len(rows) == n
    assert len({r["pid"] for r in rows}) == 1  # one shell sent them all (kill is its builtin)
    for r in rows:
        assert (r["tpid"], r["signalRaw"], r["retval"], r["comm"]) == (target, 10, 0, "sh")
        assert r["runtime.containerName"] == name and r["runtime.runtimeName"] == "docker"


def test_signal_counters_through_ig_prometheus(require_bpf, run_ig, docker):
    """`signal:SIGKILL` and `signal:SIGUSR1` counters labelled by container, exact for a container and,
    with --host, for the host (empty container label)."""
    kills, usr1_container, usr1_host = 4, 9, 6
    name = f"ig-signal-{uuid.uuid4().hex[:12]}"
    # The host's target exists first, so that a selector can name it: other host processes may send
    # SIGUSR1 meanwhile (the machine is shared), to other targets.
    host_target = subprocess.Popen([sys.executable, "-c", "import signal, sys\n"
                                    "signal.signal(signal.SIGUSR1, lambda *_: None)\n"
                                    "print('ready', flush=True)\nsys.stdin.read()"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert host_target.stdout.readline() == b"ready\n"
        ig = run_ig(f"""
metrics_name: signal_e2e
metrics:
  - name: killed
    type: counter
    category: trace
    gadget: signal
    selector: ["signal:SIGKILL"]
    labels: [k8s.container]
  - name: usr1_sent
    type: counter
    category: trace
    gadget: signal
    selector: ["signal:SIGUSR1", "ret:0"]
    labels: [k8s.container, comm]
  - name: usr1_to_host_target
    type: counter
    category: trace
    gadget: signal
    selector: ["signal:SIGUSR1", "tpid:{host_target.pid}"]
    labels: [k8s.container, comm]
""", "--host")
        started_target(docker, name)
        docker.cli("exec", name, "sh", "-c", f"for i in $(seq {kills}); do sleep 60 & kill -KILL $!; wait; done; "
                                             f"for i in $(seq {usr1_container}); do kill -USR1 1; done")
        for _ in range(usr1_host):
            subprocess.run(["/bin/kill", "-USR1", str(host_target.pid)], check=True)
    finally:
        host_target.kill()
        host_target.wait()
    assert ig.wait_for("killed_total", kills, k8s_container=name) == kills
    assert ig.wait_for("usr1_sent_total", usr1_container, k8s_container=name) == usr1_container
    assert ig.value("usr1_sent_total", k8s_container=name, comm="sh") == usr1_container
    assert ig.wait_for("usr1_to_host_target_total", usr1_host, k8s_container="", comm="kill") == usr1_host
    assert ig.value("ig_events_lost_total", gadget="signal") in (None, 0)


def test_list_gadgets_shows_signal_with_its_columns():
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    listing = subprocess.run([IG, "list-gadgets"], capture_output=True, text=True, env=env, timeout=60)
    assert any(" signal " in l and "ig-gadget-signal" in l for l in listing.stdout.splitlines()), listing.stdout
    columns = subprocess.run([IG, "list-gadgets", "trace", "signal"], capture_output=True, text=True, env=env, timeout=60)
    assert columns.returncode == 0, columns.stderr
    for name in ("pid", "comm", "tpid", "tcomm", "signal", "signalRaw", "result", "retval", "k8s.container"):
        assert f" {name} " in columns.stdout, name
