"""`kubectl gadget` as its users run it, against a local endpoint acting as the API server.

This is a contract test, not a cluster: it checks the requests `deploy` and `prometheus` send
(method, path, field manager, body) and how refusals are reported; no API server runs here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from igcore.kubectl.manifests import FIELD_MANAGER, Values, agent_objects, daemon_set, render
from tests.fake_apiserver import FakeApiServer, status

BIN = Path(sys.executable).parent
GOOD = "metrics_name: m\nmetrics:\n  - {name: executed_processes, type: counter, category: trace, gadget: exec, labels: [comm]}\n"
BAD = "metrics_name: m\nmetrics:\n  - {name: executed_processes, type: counter, category: trace, gadget: exec, labels: [comn]}\n"
PODS = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
    {"metadata": {"name": f"ig-{n}", "namespace": "gadget"}, "spec": {"nodeName": f"node-{n}", "containers": []},
     "status": {"phase": "Running"}} for n in ("b", "a")]}


@pytest.fixture
def api(tmp_path):
    server = FakeApiServer()
    server.config = server.kubeconfig(tmp_path / "kubeconfig")
    yield server
    server.close()


def kubectl_gadget(*args: str, api: FakeApiServer | None = None) -> subprocess.CompletedProcess:
    """Through kubectl itself, as users run it: kubectl finds the plugin on PATH."""
    cluster = ["--kubeconfig", str(api.config), "--context", "fake"] if api else []
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1", "COLUMNS": "300"}
    return subprocess.run([shutil.which("kubectl") or "kubectl", "gadget", *args, *cluster], capture_output=True,
                          text=True, env=env, timeout=60)


def one_line_error(result: subprocess.CompletedProcess, code: int) -> str:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    return result.stderr.strip()


def test_kubectl_finds_the_plugin():
    result = subprocess.run(["kubectl", "plugin", "list"], capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    assert str(BIN / "kubectl-gadget") in result.stdout


def test_deploy_yaml_prints_the_rendered_manifests():
    result = kubectl_gadget("deploy", "-o", "yaml")
    assert result.returncode == 0 and result.stdout == render()
    other = kubectl_gadget("deploy", "-o", "yaml", "--metrics-listen-address", ":9464", "--metrics-path", "/m",
                           "--image", "my/ig:2", "-n", "obs")
    assert other.stdout == render(Values(namespace="obs", image="my/ig:2", listen_address=":9464", metrics_path="/m"))


def assert_applied(request, path: str, obj: dict):
    assert (request.method, request.path) == ("PATCH", path)
    assert request.query == {"fieldManager": FIELD_MANAGER, "force": "true"}
    assert request.headers["content-type"] == "application/apply-patch+yaml"
    assert request.headers["authorization"] == "Bearer contract-token"
    assert request.body == obj


def test_deploy_applies_three_objects(api):
    values = Values(namespace="obs", image="my/ig:2", listen_address="0.0.0.0:9464", metrics_path="/m")
    result = kubectl_gadget("deploy", "-n", "obs", "--image", "my/ig:2", "--metrics-listen-address", "0.0.0.0:9464",
                            "--metrics-path", "/m", api=api)
    assert result.returncode == 0, result.stderr
    namespace, account, ds = agent_objects(values)
    assert len(api.requests) == 3
    assert_applied(api.requests[0], "/api/v1/namespaces/obs", namespace)
    assert_applied(api.requests[1], "/api/v1/namespaces/obs/serviceaccounts/ig", account)
    assert_applied(api.requests[2], "/apis/apps/v1/namespaces/obs/daemonsets/ig", ds)


def test_prometheus_pushes_the_configmap_and_names_the_pods(api, tmp_path):
    api.responses[("GET", "/api/v1/namespaces/gadget/pods")] = (200, PODS)
    (tmp_path / "good.yaml").write_text(GOOD)
    result = kubectl_gadget("prometheus", "--config", f"@{tmp_path / 'good.yaml'}", api=api)
    assert result.returncode == 0, result.stderr
    apply, pods = api.requests
    assert_applied(apply, "/api/v1/namespaces/gadget/configmaps/ig-config", {
        "apiVersion": "v1", "kind": "ConfigMap", "data": {"config.yaml": GOOD},
        "metadata": {"name": "ig-config", "namespace": "gadget", "labels": {"app.kubernetes.io/name": "ig"}}})
    assert (pods.method, pods.path, pods.query) == ("GET", "/api/v1/namespaces/gadget/pods",
                                                    {"labelSelector": "app.kubernetes.io/name=ig"})
    lines = result.stdout.splitlines()
    assert "2 agent pod(s) will pick it up" in result.stdout
    assert [line.split()[:2] for line in lines if line.startswith("  ")] == [["node-a", "ig-a"], ["node-b", "ig-b"]]


def test_prometheus_with_a_new_endpoint_keeps_the_image(api, tmp_path):
    deployed = daemon_set(Values(image="my/ig:7"))
    api.responses[("GET", "/apis/apps/v1/namespaces/gadget/daemonsets/ig")] = (200, deployed)
    api.responses[("GET", "/api/v1/namespaces/gadget/pods")] = (200, PODS)
    (tmp_path / "good.yaml").write_text(GOOD)
    result = kubectl_gadget("prometheus", "--config", f"@{tmp_path / 'good.yaml'}", "--metrics-listen-address",
                            ":9000", "--metrics-path", "/ig", api=api)
    assert result.returncode == 0, result.stderr
    get, apply_ds, apply_cm, _ = api.requests
    assert (get.method, get.path) == ("GET", "/apis/apps/v1/namespaces/gadget/daemonsets/ig")
    assert_applied(apply_ds, "/apis/apps/v1/namespaces/gadget/daemonsets/ig",
                   daemon_set(Values(image="my/ig:7", listen_address=":9000", metrics_path="/ig")))
    assert apply_cm.path == "/api/v1/namespaces/gadget/configmaps/ig-config"


def test_bad_config_fails_locally_and_contacts_nothing(api, tmp_path):
    (tmp_path / "bad.yaml").write_text(BAD)
    result = kubectl_gadget("prometheus", "--config", f"@{tmp_path / 'bad.yaml'}", api=api)
    line = one_line_error(result, 2)
    check = subprocess.run([str(BIN / "ig"), "prometheus", "--check", "--config", f"@{tmp_path / 'bad.yaml'}"],
                           capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"})
    assert check.returncode == 2 and line == check.stderr.strip()  # the same sentence as ig prometheus --check
    assert 'unknown column "comn"' in line
    assert api.requests == []


@pytest.mark.parametrize("code,reason,word", [(401, "Unauthorized", "unauthorized"), (403, "Forbidden", "forbidden"),
                                              (404, "NotFound", "not found"), (409, "Conflict", "conflict")])
def test_refusals_are_one_line(api, tmp_path, code, reason, word):
    message = f"configmaps \"ig-config\" refused by the test ({reason})"
    api.responses[("PATCH", "/api/v1/namespaces/gadget/configmaps/ig-config")] = (code, status(code, reason, message))
    (tmp_path / "good.yaml").write_text(GOOD)
    line = one_line_error(kubectl_gadget("prometheus", "--config", f"@{tmp_path / 'good.yaml'}", api=api), 1)
    assert f"applying configmap ig-config: the API server answered {code} ({word}): {message}" in line


def test_delete_and_show(api):
    api.responses[("DELETE", "/api/v1/namespaces/gadget/configmaps/ig-config")] = (200, status(200, "", ""))
    api.responses[("GET", "/api/v1/namespaces/gadget/pods")] = (200, PODS)
    result = kubectl_gadget("prometheus", "--delete", api=api)
    assert result.returncode == 0, result.stderr
    assert (api.requests[0].method, api.requests[0].path) == ("DELETE", "/api/v1/namespaces/gadget/configmaps/ig-config")
    assert "absent(ig_config_info)" in result.stdout

    api.responses[("GET", "/api/v1/namespaces/gadget/configmaps/ig-config")] = (200, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ig-config"}, "data": {"config.yaml": GOOD}})
    shown = kubectl_gadget("prometheus", "--show", api=api)
    assert shown.returncode == 0 and shown.stdout.endswith(GOOD)
    del api.responses[("GET", "/api/v1/namespaces/gadget/configmaps/ig-config")]
    assert "no config in namespace gadget" in kubectl_gadget("prometheus", "--show", api=api).stdout


def test_undeploy_deletes_our_namespace_only(api):
    api.responses[("GET", "/api/v1/namespaces/gadget")] = (200, yaml.safe_load(yaml.safe_dump(agent_objects(Values())[0])))
    api.responses[("DELETE", "/api/v1/namespaces/gadget")] = (200, status(200, "", ""))
    assert kubectl_gadget("undeploy", api=api).returncode == 0
    assert [(r.method, r.path) for r in api.requests] == [("GET", "/api/v1/namespaces/gadget"),
                                                          ("DELETE", "/api/v1/namespaces/gadget")]
    api.requests.clear()
    api.responses[("GET", "/api/v1/namespaces/default")] = (200, {"apiVersion": "v1", "kind": "Namespace",
                                                                  "metadata": {"name": "default"}})
    result = kubectl_gadget("undeploy", "-n", "default", api=api)
    assert result.returncode == 0 and "ig is not deployed in namespace default" in result.stdout
    assert ("DELETE", "/api/v1/namespaces/default") not in [(r.method, r.path) for r in api.requests]


def test_unreachable_server_and_unknown_context(api, tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    env_args = ("prometheus", "--config", f"@{tmp_path / 'good.yaml'}", "--kubeconfig", str(api.config))
    line = one_line_error(kubectl_gadget(*env_args), 1)   # the current context points at a closed port
    assert "cannot reach the API server at http://127.0.0.1:9" in line
    line = one_line_error(kubectl_gadget(*env_args, "--context", "nope"), 2)
    assert "nope" in line
