"""The node agent's manifests and the Prometheus example: rendered once, valid, consistent.

Validation is offline against the Kubernetes OpenAPI schemas that `kubernetes-validate` ships
(strict: unknown fields are errors), for the oldest and newest versions we support.
"""

from __future__ import annotations

import copy
import subprocess

import pytest
import yaml
import kubernetes_validate

from igcore.http import parse_listen_address
from igcore.kubectl.manifests import CONFIG_DIR, Values, agent_objects, render
from tests.fixtures.requirements import need_binary
from tests.k8s_objects import PROMETHEUS_EXAMPLE, ROOT, by_kind, example_prometheus_config, with_file_sd

KUBERNETES_VERSIONS = ("1.28.0", "1.33.0", kubernetes_validate.latest_version())
OTHER_VALUES = Values(namespace="observability", image="registry.example/ig:1.2", listen_address="[::]:9464",
                      metrics_path="/ig/metrics")


def test_committed_manifest_is_the_rendered_one():
    assert (ROOT / "deploy" / "ig.yaml").read_text() == render(), \
        "deploy/ig.yaml is stale: regenerate it with `kubectl-gadget deploy -o yaml > deploy/ig.yaml`"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("source", ["deploy", "other-values", "prometheus-example"])
def test_valid_under_strict_schemas(source, version):
    objects = {"deploy": lambda: list(yaml.safe_load_all((ROOT / "deploy" / "ig.yaml").read_text())),
               "other-values": lambda: agent_objects(OTHER_VALUES),
               "prometheus-example": lambda: list(yaml.safe_load_all(PROMETHEUS_EXAMPLE.read_text()))}[source]()
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_rejects_an_unknown_field():
    """The check above can fail: a misspelt field is an error under the strict schemas."""
    daemon_set = copy.deepcopy(by_kind(agent_objects(Values()), "DaemonSet"))
    daemon_set["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemon_set, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("values", [Values(), OTHER_VALUES], ids=["default", "other"])
def test_agent_daemon_set_is_consistent(values):
    objects = agent_objects(values)
    namespace = by_kind(objects, "Namespace")
    assert namespace["metadata"]["name"] == values.namespace
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert by_kind(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    ds = by_kind(objects, "DaemonSet")
    template, pod = ds["spec"]["template"], ds["spec"]["template"]["spec"]
    selector = ds["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    assert pod["hostPID"] is True and pod["automountServiceAccountToken"] is False
    assert {"operator": "Exists"} in pod["tolerations"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes, mount
        assert mount.get("readOnly") is True, mount
    config_mount = next(m for m in container["volumeMounts"] if m["mountPath"] == CONFIG_DIR)
    assert "subPath" not in config_mount
    assert volumes[config_mount["name"]]["configMap"]["optional"] is True
    for volume in volumes.values():
        if "hostPath" in volume:
            assert any(m["name"] == volume["name"] for m in container["volumeMounts"])

    # one listen address: the flag, the container port and the scrape annotations agree
    args = container["args"]
    listen = args[args.index("--metrics-listen-address") + 1]
    path = args[args.index("--metrics-path") + 1]
    annotations = template["metadata"]["annotations"]
    (port,) = container["ports"]
    assert listen == values.listen_address and path == values.metrics_path
    assert int(annotations["prometheus.io/port"]) == port["containerPort"] == parse_listen_address(listen)[1]
    assert annotations["prometheus.io/path"] == path
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/scheme"] == "http"
    assert "--watch" in args and f"@{CONFIG_DIR}" in args

    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    # ig's own health answers (docs/guide.md, Health probes), on the metrics port, never a scrape
    probes = {probe: container[probe]["httpGet"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {probe: get["path"] for probe, get in probes.items()} == {
        "startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    for get in probes.values():
        assert get["port"] == port["name"] and get["scheme"] == annotations["prometheus.io/scheme"].upper()
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_prometheus_example_objects_and_config(tmp_path):
    objects = list(yaml.safe_load_all(PROMETHEUS_EXAMPLE.read_text()))
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert names == [("Namespace", "monitoring"), ("ServiceAccount", "prometheus"), ("ClusterRole", "discoverer"),
                     ("ClusterRoleBinding", "prometheus-discoverer"), ("ConfigMap", "prometheus-server-conf"),
                     ("Deployment", "prometheus")]
    deployment = by_kind(objects, "Deployment")
    assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    # Debian's promtool has no Kubernetes discovery: the discovery block is swapped, the rest checked as is
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(with_file_sd(example_prometheus_config(), tmp_path / "targets.json")))
    result = subprocess.run([need_binary("promtool"), "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (job,) = example_prometheus_config()["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
