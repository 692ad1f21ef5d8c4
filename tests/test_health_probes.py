"""The health probes of a real `ig prometheus` (docs/guide.md, "Health probes"): /readyz is not
ready while ig starts, nor while a gadget of the config failed to start or its thread died, and
says why in one escaped line per gadget; /healthz answers for the loop and the engine; both
answer without the basic auth that /metrics needs (docs/security.md)."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from tests.fixtures.igrun import IG, IgProcess, free_port
from tests.fixtures.waiting import wait_until

SYNTH_TRACE = """
  - name: good_events
    type: counter
    category: trace
    gadget: synth
"""
MISBEHAVING_TRACE = """
  - name: bad_events
    type: counter
    category: trace
    gadget: misbehaving
"""
MISBEHAVING_SNAPSHOT = """
  - name: bad_sizes
    type: gauge
    category: snapshot
    gadget: misbehaving
"""
# Hostile reasons: a newline, an escape sequence, a line separator, a lone surrogate's neighbour (JSON
# cannot carry one through the environment) and a backslash; each must stay on its gadget's line.
START_ERROR = "cannot start\nready\x1b[2J\u2028forged: running\\"
DEATH = "reader crashed\r\nready\x07"


def config(*metrics: str) -> str:
    return "metrics_name: probes\nmetrics:" + "".join(metrics)


def replace(path: Path, text: str) -> None:
    """Write the whole file at once (by rename, as the kubelet updates a ConfigMap): --watch never reads half of it."""
    path.with_suffix(".tmp").write_text(text)
    path.with_suffix(".tmp").rename(path)


def spawn(tmp_path: Path, config_text: str, *args: str) -> IgProcess:
    """A real `ig prometheus`, not waited for: the test asks its probes from the start, as the kubelet does."""
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path / f"ig-{address.replace(':', '_')}.log"
    proc = subprocess.Popen([IG, "prometheus", "--host", "--metrics-listen-address", address,
                             "--config", config_text, *args], stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    return IgProcess(proc, address, "/metrics", log)


def get(ig: IgProcess, path: str, **headers) -> tuple[int, str] | None:
    """(status, body) of a GET, or None when ig does not answer yet."""
    assert ig.proc.poll() is None, f"ig exited with {ig.proc.returncode}:\n{ig.output()}"
    request = urllib.request.Request(f"http://{ig.address}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def until(ig: IgProcess, path: str, condition, what: str) -> tuple[int, str]:
    def answered():
        answer = get(ig, path)
        return answer if answer is not None and condition(*answer) else None
    return wait_until(answered, timeout=60, what=f"{path}: {what}")


@pytest.fixture
def agents(tmp_path):
    started: list[IgProcess] = []

    def start(config_text: str, *args: str) -> IgProcess:
        started.append(spawn(tmp_path, config_text, *args))
        return started[-1]

    yield start
    for ig in started:
        ig.stop(signal.SIGTERM)


@pytest.fixture
def misbehaving(tmp_path, monkeypatch, synth):
    batches = tmp_path / "batches"
    batches.mkdir()
    monkeypatch.setenv("IG_MISBEHAVING_BATCHES", str(batches))
    monkeypatch.setenv("IG_MISBEHAVING_SNAPSHOT", str(tmp_path / "snapshot.json"))
    (tmp_path / "snapshot.json").write_text("[]")
    return batches


def lines_of(body: str) -> dict[str, str]:
    """gadget label -> the rest of its line."""
    return dict(line.split(": ", 1) for line in body.splitlines()[1:])


def test_not_ready_while_starting_then_ready_once_every_gadget_runs(agents, misbehaving, tmp_path, monkeypatch):
    gate = tmp_path / "let-start-finish"
    monkeypatch.setenv("IG_MISBEHAVING_START_GATE", str(gate))   # trace misbehaving's start() waits for it
    ig = agents(config(SYNTH_TRACE, MISBEHAVING_TRACE))

    status, body = until(ig, "/readyz", lambda status, body: True, "an answer while ig starts")
    assert (status, body) == (503, "not ready: starting\n")
    status, body = get(ig, "/healthz")
    assert status == 503 and body.startswith("starting")   # the start-up probe holds the liveness probe

    gate.touch()
    status, body = until(ig, "/readyz", lambda status, body: status == 200, "ready")
    assert body == "ready\ntrace synth: running\ntrace misbehaving: running\n"
    assert get(ig, "/healthz") == (200, "ok\n")


def test_not_ready_when_a_gadget_cannot_start_or_its_thread_dies_and_says_why(agents, misbehaving, monkeypatch):
    monkeypatch.setenv("IG_MISBEHAVING_SNAPSHOT_START_ERROR", START_ERROR)
    ig = agents(config(SYNTH_TRACE, MISBEHAVING_TRACE, MISBEHAVING_SNAPSHOT))

    status, body = until(ig, "/readyz", lambda status, body: not body.startswith("not ready: starting"),
                               "start-up to finish")
    assert status == 503 and body.splitlines()[0] == "not ready"
    gadgets = lines_of(body)
    assert gadgets["trace synth"] == "running" and gadgets["trace misbehaving"] == "running"
    assert gadgets["snapshot misbehaving"] == (
        "start_failed: RuntimeError: cannot start\\u000aready\\u001b[2J\\u2028forged: running\\\\")
    assert len(body.splitlines()) == 4   # the status line and one per gadget: the reason forged none
    assert get(ig, "/healthz") == (200, "ok\n")   # a failed gadget makes ig unready, not dead

    replace(misbehaving / "000001.json", json.dumps({"__die__": DEATH}))   # the gadget reads whole files
    status, body = until(ig, "/readyz", lambda status, body: "thread_died" in body, "the dead thread")
    assert status == 503
    assert lines_of(body)["trace misbehaving"] == (
        "thread_died: its thread 'misbehaving-reader' died: RuntimeError: reader crashed\\u000d\\u000aready\\u0007")
    assert len(body.splitlines()) == 4
    assert get(ig, "/healthz") == (200, "ok\n")


def test_healthz_fails_while_a_reload_holds_the_engine_too_long(agents, misbehaving, tmp_path, monkeypatch):
    gate = tmp_path / "let-start-finish"
    monkeypatch.setenv("IG_MISBEHAVING_START_GATE", str(gate))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config(SYNTH_TRACE))
    ig = agents(f"@{config_file}", "--health-stuck-after", "1")
    until(ig, "/readyz", lambda status, body: status == 200, "ready")

    config_file.write_text(config(SYNTH_TRACE, MISBEHAVING_TRACE))   # its start() hangs until the gate opens
    ig.proc.send_signal(signal.SIGHUP)
    status, body = until(ig, "/healthz", lambda status, body: status == 503, "the stuck reload")
    assert body.startswith("stuck: one reload has held the engine for ")
    assert get(ig, "/readyz") == (503, "not ready: reloading the config\ntrace synth: running\n")

    gate.touch()
    until(ig, "/readyz", lambda status, body: "trace misbehaving: running" in body, "the reload to finish")
    assert get(ig, "/healthz") == (200, "ok\n")


def test_not_ready_while_the_config_does_not_load(agents, misbehaving, tmp_path):
    config_file = tmp_path / "config.yaml"   # none yet: ig serves its own metrics and waits for one
    ig = agents(f"@{config_file}", "--watch", "--watch-poll-interval", "0.2")
    assert until(ig, "/readyz", lambda status, body: status == 200, "ready without a config") == (200, "ready\n")

    replace(config_file, config(SYNTH_TRACE).replace("type: counter", "type: countr"))
    # a reload under way answers 503 too (and --watch may reload the file more than once): wait
    # for the failed load's own answer, once no reload runs
    failed = (503, "not ready\nconfig: the last load failed (see ig's log)\n")
    assert until(ig, "/readyz", lambda status, body: (status, body) == failed, "the invalid config") == failed
    replace(config_file, config(SYNTH_TRACE))
    status, body = until(ig, "/readyz", lambda status, body: status == 200, "ready with the fixed config")
    assert body == "ready\ntrace synth: running\n"


def test_probes_answer_without_basic_auth_and_keep_the_reasons_back(agents, misbehaving, monkeypatch, tmp_path):
    monkeypatch.setenv("IG_MISBEHAVING_SNAPSHOT_START_ERROR", "secret detail")
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
    ig = agents(config(SYNTH_TRACE, MISBEHAVING_SNAPSHOT), "--web-config-file", str(web))

    status, body = until(ig, "/readyz", lambda status, body: not body.startswith("not ready: starting"),
                               "start-up to finish")
    assert (status, body) == (503, "not ready\ntrace synth: running\nsnapshot misbehaving: start_failed\n")
    assert get(ig, "/healthz") == (200, "ok\n")
    assert get(ig, "/metrics")[0] == 401   # only the probes go without credentials
    good = "Basic " + base64.b64encode(b"prometheus:pw").decode()
    assert get(ig, "/metrics", Authorization=good)[0] == 200


def test_a_probe_path_cannot_be_the_metrics_path(tmp_path):
    result = subprocess.run([IG, "prometheus", "--metrics-path", "/readyz", "--config", config(SYNTH_TRACE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--metrics-path /readyz is the path of a health probe" in result.stderr
    assert "Traceback" not in result.stderr
