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

from igcore.kubectl.manifests import (CREATED_BY, FIELD_MANAGER, Values, agent_objects, daemon_set, namespace,
                                      network_policy, render)
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
    existing = kubectl_gadget("deploy", "-o", "yaml", "-n", "team-a", "--use-existing-namespace")
    assert existing.returncode == 0 and "kind: Namespace" not in existing.stdout   # nothing to apply to it
    assert existing.stdout == render(Values(namespace="team-a"), with_namespace=False)


def assert_applied(request, path: str, obj: dict):
    assert (request.method, request.path) == ("PATCH", path)
    assert request.query == {"fieldManager": FIELD_MANAGER, "force": "true"}
    assert request.headers["content-type"] == "application/apply-patch+yaml"
    assert request.headers["authorization"] == "Bearer contract-token"
    assert request.body == obj


def namespace_object(name: str, labels: dict | None = None, annotations: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}}}


RESTRICTED = {"kubernetes.io/metadata.name": "team-a", "pod-security.kubernetes.io/enforce": "restricted"}


def namespace_writes(api, name: str) -> list:
    """Every request that could change namespace `name` itself."""
    return [(r.method, r.path) for r in api.requests if r.method != "GET" and
            (r.path == f"/api/v1/namespaces/{name}" or (r.path == "/api/v1/namespaces" and r.method == "POST"))]


def test_deploy_creates_a_missing_namespace_and_marks_it(api):
    values = Values(namespace="obs", image="my/ig:2", listen_address="0.0.0.0:9464", metrics_path="/m")
    result = kubectl_gadget("deploy", "-n", "obs", "--image", "my/ig:2", "--metrics-listen-address", "0.0.0.0:9464",
                            "--metrics-path", "/m", api=api)
    assert result.returncode == 0, result.stderr
    get, create, account, role, binding, ds = api.requests
    assert (get.method, get.path) == ("GET", "/api/v1/namespaces/obs")
    # a create (POST), never an apply that would take over a namespace created meanwhile
    assert (create.method, create.path, create.query) == ("POST", "/api/v1/namespaces", {"fieldManager": FIELD_MANAGER})
    assert create.body == namespace(values) and create.body["metadata"]["annotations"] == {CREATED_BY: "kubectl gadget deploy"}
    service_account, cluster_role, cluster_role_binding, daemon = agent_objects(values)
    assert_applied(account, "/api/v1/namespaces/obs/serviceaccounts/ig", service_account)
    assert_applied(role, "/apis/rbac.authorization.k8s.io/v1/clusterroles/ig-obs", cluster_role)
    assert_applied(binding, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/ig-obs", cluster_role_binding)
    assert_applied(ds, "/apis/apps/v1/namespaces/obs/daemonsets/ig", daemon)
    assert "namespace/obs created" in result.stdout


@pytest.mark.parametrize("labels", [RESTRICTED, namespace(Values(namespace="team-a"))["metadata"]["labels"]],
                         ids=["someone-elses", "labelled-like-ours"])
def test_deploy_refuses_a_namespace_it_did_not_create(api, labels):
    """Labels prove nothing (an older deploy forced ig's on): only the creation mark makes a namespace ig's."""
    api.responses[("GET", "/api/v1/namespaces/team-a")] = (200, namespace_object("team-a", labels))
    line = one_line_error(kubectl_gadget("deploy", "-n", "team-a", api=api), 2)
    assert "namespace team-a exists and was not created by kubectl gadget deploy" in line
    assert "--use-existing-namespace" in line
    assert [(r.method, r.path) for r in api.requests] == [("GET", "/api/v1/namespaces/team-a")]


def test_deploy_refuses_a_namespace_created_while_it_looked(api):
    api.responses[("GET", "/api/v1/namespaces/team-a")] = [
        (404, status(404, "NotFound", "namespaces \"team-a\" not found")), (200, namespace_object("team-a", RESTRICTED))]
    api.responses[("POST", "/api/v1/namespaces")] = (409, status(409, "AlreadyExists", "namespaces \"team-a\" already exists"))
    line = one_line_error(kubectl_gadget("deploy", "-n", "team-a", api=api), 2)
    assert "was not created by kubectl gadget deploy" in line
    assert [(r.method, r.path) for r in api.requests] == [
        ("GET", "/api/v1/namespaces/team-a"), ("POST", "/api/v1/namespaces"), ("GET", "/api/v1/namespaces/team-a")]


def test_use_existing_namespace_writes_none_of_its_labels_and_undeploy_keeps_it(api):
    api.responses[("GET", "/api/v1/namespaces/team-a")] = (200, namespace_object("team-a", RESTRICTED))
    result = kubectl_gadget("deploy", "-n", "team-a", "--use-existing-namespace", api=api)
    assert result.returncode == 0, result.stderr
    assert namespace_writes(api, "team-a") == []
    assert not any("pod-security" in str(r.body) for r in api.requests if r.body)
    assert [(r.method, r.path) for r in api.requests] == [
        ("GET", "/api/v1/namespaces/team-a"), ("GET", "/apis/apps/v1/namespaces/team-a/daemonsets/ig"),
        ("PATCH", "/api/v1/namespaces/team-a/serviceaccounts/ig"),
        ("PATCH", "/apis/rbac.authorization.k8s.io/v1/clusterroles/ig-team-a"),
        ("PATCH", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/ig-team-a"),
        ("PATCH", "/apis/apps/v1/namespaces/team-a/daemonsets/ig")]
    warning = " ".join(result.stderr.split())
    assert "enforces Pod Security level 'restricted'" in warning and "changes none of the namespace's labels" in warning

    api.requests.clear()
    result = kubectl_gadget("undeploy", "-n", "team-a", api=api)
    assert result.returncode == 0, result.stderr
    assert ("DELETE", "/api/v1/namespaces/team-a") not in [(r.method, r.path) for r in api.requests]
    assert ("DELETE", "/apis/apps/v1/namespaces/team-a/daemonsets/ig") in [(r.method, r.path) for r in api.requests]
    # cluster-wide, so undeploy deletes them itself
    assert ("DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterroles/ig-team-a") in [(r.method, r.path) for r in api.requests]
    assert "namespace/team-a kept" in result.stdout


def test_deploy_into_its_own_namespace_again_changes_nothing_there(api):
    api.responses[("GET", "/api/v1/namespaces/gadget")] = (200, namespace(Values()))
    result = kubectl_gadget("deploy", api=api)
    assert result.returncode == 0, result.stderr
    assert namespace_writes(api, "gadget") == []
    assert "namespace/gadget exists: left unchanged" in result.stdout


OPERATOR = Values(extra_args=("--max-series=5000", "-v"), web_config=True, tls=True, metrics_from="monitoring",
                  listen_address="0.0.0.0:9464", metrics_path="/ig")


def test_redeploy_keeps_the_operators_options(api):
    """A deploy that is not told them again keeps extra arguments, web config, policy and endpoint."""
    api.responses[("GET", "/api/v1/namespaces/gadget")] = (200, namespace(Values()))
    api.responses[("GET", "/apis/apps/v1/namespaces/gadget/daemonsets/ig")] = (200, daemon_set(OPERATOR))
    result = kubectl_gadget("deploy", api=api)
    assert result.returncode == 0, result.stderr
    applied = {r.path.rsplit("/", 2)[-2]: r for r in api.requests if r.method == "PATCH"}
    assert_applied(applied["daemonsets"], "/apis/apps/v1/namespaces/gadget/daemonsets/ig", daemon_set(OPERATOR))
    assert_applied(applied["networkpolicies"], "/apis/networking.k8s.io/v1/namespaces/gadget/networkpolicies/ig-metrics",
                   network_policy(OPERATOR))
    assert "secrets" not in applied and not [r for r in api.requests if r.method == "DELETE"]
    assert "Agents serve https://<pod IP>:9464/ig" in result.stdout

    api.requests.clear()
    result = kubectl_gadget("deploy", "--no-extra-args", "--no-network-policy", "--no-web-config",
                            "--extra-arg=--max-series=10", api=api)
    assert result.returncode == 2 and "cannot be given together" in result.stderr   # --no-extra-args with --extra-arg
    result = kubectl_gadget("deploy", "--no-extra-args", "--no-network-policy", "--no-web-config", api=api)
    assert result.returncode == 0, result.stderr
    plain = Values(listen_address="0.0.0.0:9464", metrics_path="/ig")
    ds = next(r for r in api.requests if r.method == "PATCH" and r.path.endswith("/daemonsets/ig"))
    assert ds.body == daemon_set(plain)
    assert {r.path for r in api.requests if r.method == "DELETE"} == {
        "/api/v1/namespaces/gadget/secrets/ig-web-config",
        "/apis/networking.k8s.io/v1/namespaces/gadget/networkpolicies/ig-metrics"}


def test_unreadable_kept_values_are_not_trusted(api):
    hostile = daemon_set(OPERATOR)
    hostile["metadata"]["annotations"]["kubectl-gadget/deploy-values"] = '{"extra_args": ["--config=@/etc/passwd"]}'
    api.responses[("GET", "/api/v1/namespaces/gadget")] = (200, namespace(Values()))
    api.responses[("GET", "/apis/apps/v1/namespaces/gadget/daemonsets/ig")] = (200, hostile)
    result = kubectl_gadget("deploy", api=api)
    assert result.returncode == 0, result.stderr
    assert "earlier options are not kept" in " ".join(result.stderr.split())
    ds = next(r for r in api.requests if r.method == "PATCH" and r.path.endswith("/daemonsets/ig"))
    assert ds.body == daemon_set(Values())


def test_web_config_file_becomes_a_secret_and_https(api, tmp_path):
    import base64

    from tests.fixtures.certs import CertificateAuthority

    ca = CertificateAuthority(tmp_path)
    (tmp_path / "certs").mkdir()
    ca.issue("server", "ig-agent", dns=("ig-agent",), cert_path=tmp_path / "certs" / "s.pem",
             key_path=tmp_path / "certs" / "s-key.pem")
    web = tmp_path / "web.yml"
    users = {"prometheus": "$2b$10$L55qgzdh2yT0Ak0CEvY7yuuX9pHpKsxQb25c1h4NVskaP47ZfOBne"}
    web.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "certs/s.pem", "key_file": str(tmp_path / "certs" / "s-key.pem")},
                                   "basic_auth_users": users}))
    api.responses[("GET", "/api/v1/namespaces/gadget")] = (200, namespace(Values()))
    result = kubectl_gadget("deploy", "--web-config-file", str(web), api=api)
    assert result.returncode == 0, result.stderr
    secret = next(r for r in api.requests if r.path == "/api/v1/namespaces/gadget/secrets/ig-web-config")
    assert secret.method == "PATCH" and secret.query["fieldManager"] == FIELD_MANAGER
    files = {key: base64.b64decode(value) for key, value in secret.body["data"].items()}
    assert files["tls.crt"] == (tmp_path / "certs" / "s.pem").read_bytes()
    assert files["tls.key"] == (tmp_path / "certs" / "s-key.pem").read_bytes()
    copy = yaml.safe_load(files["web-config.yml"])   # the file as the agent reads it in its Secret volume
    assert copy == {"tls_server_config": {"cert_file": "tls.crt", "key_file": "tls.key"}, "basic_auth_users": users}
    ds = next(r for r in api.requests if r.method == "PATCH" and r.path.endswith("/daemonsets/ig"))
    assert ds.body == daemon_set(Values(web_config=True, tls=True))
    assert ds.body["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scheme"] == "https"

    api.requests.clear()   # basic auth alone: the Secret, but plain HTTP
    web.write_text(yaml.safe_dump({"basic_auth_users": users}))
    assert kubectl_gadget("deploy", "--web-config-file", str(web), api=api).returncode == 0
    ds = next(r for r in api.requests if r.method == "PATCH" and r.path.endswith("/daemonsets/ig"))
    assert ds.body == daemon_set(Values(web_config=True, tls=False))


def test_bad_web_config_file_contacts_nothing(api, tmp_path):
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_flie: x\n")
    line = one_line_error(kubectl_gadget("deploy", "--web-config-file", str(web), api=api), 2)
    assert "unknown key tls_server_config.cert_flie" in line
    assert api.requests == []


@pytest.mark.parametrize("args,words", [(("-n", "../kube-system"), "not a namespace name"),
                                        (("--network-policy", "Mon itoring"), "not a namespace name"),
                                        (("--extra-arg=--metrics-listen-address=:1",), "set by kubectl gadget deploy itself"),
                                        (("--extra-arg", "a\nb"), "no control characters")])
def test_deploy_refuses_bad_options_before_any_request(api, args, words):
    line = one_line_error(kubectl_gadget("deploy", *args, api=api), 2)
    assert words in line and api.requests == []


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


def test_prometheus_with_a_new_endpoint_keeps_the_image_and_options(api, tmp_path):
    deployed = daemon_set(Values(image="my/ig:7", extra_args=("--max-series=9",), web_config=True))
    api.responses[("GET", "/apis/apps/v1/namespaces/gadget/daemonsets/ig")] = (200, deployed)
    api.responses[("GET", "/api/v1/namespaces/gadget/pods")] = (200, PODS)
    (tmp_path / "good.yaml").write_text(GOOD)
    result = kubectl_gadget("prometheus", "--config", f"@{tmp_path / 'good.yaml'}", "--metrics-listen-address",
                            ":9000", "--metrics-path", "/ig", api=api)
    assert result.returncode == 0, result.stderr
    get, apply_ds, apply_cm, _ = api.requests
    assert (get.method, get.path) == ("GET", "/apis/apps/v1/namespaces/gadget/daemonsets/ig")
    assert_applied(apply_ds, "/apis/apps/v1/namespaces/gadget/daemonsets/ig",
                   daemon_set(Values(image="my/ig:7", listen_address=":9000", metrics_path="/ig",
                                     extra_args=("--max-series=9",), web_config=True)))
    args = apply_ds.body["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--web-config-file" in args and args[-1] == "--max-series=9"
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
    api.responses[("GET", "/api/v1/namespaces/gadget")] = (200, namespace(Values()))
    api.responses[("DELETE", "/api/v1/namespaces/gadget")] = (200, status(200, "", ""))
    assert kubectl_gadget("undeploy", api=api).returncode == 0
    assert [(r.method, r.path) for r in api.requests] == [
        ("GET", "/api/v1/namespaces/gadget"),
        ("DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/ig-gadget"),   # not in the namespace
        ("DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterroles/ig-gadget"),
        ("DELETE", "/api/v1/namespaces/gadget")]
    for name, labels in (("default", {}), ("team-a", namespace(Values())["metadata"]["labels"])):
        # the second carries every label deploy once forced on an existing namespace, but not the mark
        api.requests.clear()
        api.responses[("GET", f"/api/v1/namespaces/{name}")] = (200, namespace_object(name, labels))
        result = kubectl_gadget("undeploy", "-n", name, api=api)
        assert result.returncode == 0 and f"ig is not deployed in namespace {name}" in result.stdout
        assert f"namespace/{name} kept" in result.stdout
        assert namespace_writes(api, name) == []


def test_unreachable_server_and_unknown_context(api, tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    env_args = ("prometheus", "--config", f"@{tmp_path / 'good.yaml'}", "--kubeconfig", str(api.config))
    line = one_line_error(kubectl_gadget(*env_args), 1)   # the current context points at a closed port
    assert "cannot reach the API server at http://127.0.0.1:9" in line
    line = one_line_error(kubectl_gadget(*env_args, "--context", "nope"), 2)
    assert "nope" in line


@pytest.mark.parametrize("text", ["garbage: [\n", "[1, 2]\n", "clusters: 7\n"], ids=["not-yaml", "a-list", "bad-shape"])
def test_a_kubeconfig_that_cannot_be_read_is_one_line(text, tmp_path):
    """A kubeconfig file is input like any other: whatever is wrong with it is one line, exit 2."""
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"}
    result = subprocess.run([shutil.which("kubectl") or "kubectl", "gadget", "undeploy", "--kubeconfig", str(path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert "cannot use the kubeconfig" in one_line_error(result, 2)
