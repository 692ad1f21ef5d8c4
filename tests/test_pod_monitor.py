"""`kubectl gadget deploy --pod-monitor` (docs/guide.md, Prometheus): a PodMonitor for the
Prometheus Operator whose port, path and scheme are those of the scrape annotations.

The structure is checked against the subset of the operator's PodMonitor schema
(monitoring.coreos.com/v1, as its CRD publishes it) that the rendered object uses, with unknown
fields refused as a strict apply refuses them; the requests are checked against a local endpoint
acting as the API server, as tests/test_kubectl_gadget.py does.
"""

from __future__ import annotations

import copy
import textwrap

import jsonschema
import pytest
import yaml

from igcore.kubectl.manifests import Values, agent_objects, daemon_set, pod_monitor, render
from tests.fake_apiserver import status
from tests.k8s_objects import ROOT, by_kind
from tests.test_kubectl_gadget import (PODS, api, assert_applied, kubectl_gadget, namespace,  # noqa: F401
                                       one_line_error)

_STRING = {"type": "string"}
_LABEL_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": {"type": "object", "additionalProperties": _STRING},
    "matchExpressions": {"type": "array", "items": {
        "type": "object", "required": ["key", "operator"],
        "properties": {"key": _STRING, "operator": _STRING, "values": {"type": "array", "items": _STRING}}}}}}
# The operator's PodMonitor CRD (monitoring.coreos.com_podmonitors.yaml, v1): the fields ig writes,
# each with its documented type; any other field is refused, so a misspelt one fails.
POD_MONITOR_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object", "required": ["name", "namespace"], "additionalProperties": False,
                     "properties": {"name": _STRING, "namespace": _STRING,
                                    "labels": {"type": "object", "additionalProperties": _STRING}}},
        "spec": {
            "type": "object", "required": ["selector"], "additionalProperties": False,
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                    "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _STRING}}},
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "properties": {
                        "port": _STRING,                                   # the pod port's *name*
                        "path": _STRING,
                        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]}}}},
            }},
    },
}
TLS = Values(namespace="obs", listen_address="0.0.0.0:9464", metrics_path="/ig/metrics", web_config=True, tls=True,
             pod_monitor=True)
VALUES = [Values(pod_monitor=True), Values(namespace="o", listen_address="[::]:443", metrics_path="/m",
                                           pod_monitor=True), TLS]


@pytest.mark.parametrize("values", VALUES, ids=["default", "other", "tls"])
def test_the_pod_monitor_has_the_operators_documented_fields(values):
    jsonschema.validate(pod_monitor(values), POD_MONITOR_SCHEMA)


def test_the_schema_check_can_fail():
    misspelt = copy.deepcopy(pod_monitor(Values()))
    misspelt["spec"]["podMetricsEndpoints"][0]["targetport"] = 2223
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(misspelt, POD_MONITOR_SCHEMA)
    number = copy.deepcopy(pod_monitor(Values()))
    number["spec"]["podMetricsEndpoints"][0]["port"] = 2223   # the operator's `port` is a name, not a number
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(number, POD_MONITOR_SCHEMA)


@pytest.mark.parametrize("values", VALUES, ids=["default", "other", "tls"])
def test_the_pod_monitor_scrapes_what_the_annotations_say(values):
    """Both discovery styles find the same pods and scrape the same port, path and scheme."""
    monitor, ds = pod_monitor(values), daemon_set(values)
    template = ds["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[endpoint["port"]] == int(annotations["prometheus.io/port"])
    assert endpoint["path"] == annotations["prometheus.io/path"] == values.metrics_path
    assert endpoint["scheme"] == annotations["prometheus.io/scheme"] == ("https" if values.tls else "http")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [values.namespace]}
    assert monitor["metadata"]["namespace"] == ds["metadata"]["namespace"] == values.namespace


def test_only_deploy_with_pod_monitor_renders_one():
    assert "PodMonitor" not in [o["kind"] for o in agent_objects(Values())]
    assert by_kind(agent_objects(Values(pod_monitor=True)), "PodMonitor") == pod_monitor(Values(pod_monitor=True))
    result = kubectl_gadget("deploy", "-o", "yaml", "--pod-monitor", "--metrics-path", "/ig")
    assert result.returncode == 0, result.stderr
    assert result.stdout == render(Values(pod_monitor=True, metrics_path="/ig"))
    assert by_kind(list(yaml.safe_load_all(result.stdout)), "PodMonitor") == pod_monitor(
        Values(pod_monitor=True, metrics_path="/ig"))


PATH = "/apis/monitoring.coreos.com/v1/namespaces/gadget/podmonitors/ig"


def test_deploy_applies_the_pod_monitor_and_keeps_it(api):
    api.responses[("GET", "/api/v1/namespaces/gadget")] = (200, namespace(Values()))
    result = kubectl_gadget("deploy", "--pod-monitor", api=api)
    assert result.returncode == 0, result.stderr
    (applied,) = [r for r in api.requests if r.path == PATH]
    assert_applied(applied, PATH, pod_monitor(Values(pod_monitor=True)))
    assert "podmonitor/ig applied" in result.stdout

    # a later deploy not told again keeps it, and re-applies it with a changed endpoint
    api.responses[("GET", "/apis/apps/v1/namespaces/gadget/daemonsets/ig")] = (200, daemon_set(Values(pod_monitor=True)))
    api.requests.clear()
    result = kubectl_gadget("deploy", "--metrics-path", "/ig", api=api)
    assert result.returncode == 0, result.stderr
    (applied,) = [r for r in api.requests if r.path == PATH]
    assert_applied(applied, PATH, pod_monitor(Values(pod_monitor=True, metrics_path="/ig")))

    # so does `kubectl gadget prometheus --metrics-path`, which changes the endpoint
    api.requests.clear()
    api.responses[("GET", "/api/v1/namespaces/gadget/pods")] = (200, PODS)
    result = kubectl_gadget("prometheus", "--config", f"@{ROOT / 'examples' / 'executed_processes.yaml'}",
                            "--metrics-path", "/x", api=api)
    assert result.returncode == 0, result.stderr
    (applied,) = [r for r in api.requests if r.path == PATH]
    assert_applied(applied, PATH, pod_monitor(Values(pod_monitor=True, metrics_path="/x")))

    # --no-pod-monitor deletes it
    api.requests.clear()
    api.responses[("DELETE", PATH)] = (200, status(200, "", ""))
    result = kubectl_gadget("deploy", "--no-pod-monitor", api=api)
    assert result.returncode == 0, result.stderr
    assert [(r.method, r.path) for r in api.requests if "podmonitors" in r.path] == [("DELETE", PATH)]
    assert "podmonitor/ig deleted" in result.stdout


def test_a_cluster_without_the_operator_gets_one_line(api):
    api.responses[("GET", "/api/v1/namespaces/gadget")] = (200, namespace(Values()))
    api.responses[("PATCH", PATH)] = (404, status(404, "NotFound", "the server could not find the requested resource"))
    line = one_line_error(kubectl_gadget("deploy", "--pod-monitor", api=api), 1)
    assert "applying podmonitor ig: the cluster has no PodMonitor kind: is the Prometheus Operator installed?" in line


def test_pod_monitor_and_its_no_form_together_are_refused(api):
    line = one_line_error(kubectl_gadget("deploy", "--pod-monitor", "--no-pod-monitor", api=api), 2)
    assert "cannot be given together" in line and api.requests == []


def test_undeploy_deletes_the_pod_monitor(api):
    api.responses[("DELETE", PATH)] = (200, status(200, "", ""))
    result = kubectl_gadget("undeploy", api=api)
    assert result.returncode == 0, result.stderr
    assert ("DELETE", PATH) in [(r.method, r.path) for r in api.requests]
    assert "podmonitor/ig" in result.stdout


def test_the_guide_shows_the_rendered_pod_monitor():
    blocks = (ROOT / "docs" / "guide.md").read_text().split("```yaml\n")[1:]
    (shown,) = [textwrap.dedent(b.split("```", 1)[0]) for b in blocks if "kind: PodMonitor" in b]
    assert yaml.safe_load(shown) == pod_monitor(Values(pod_monitor=True))
