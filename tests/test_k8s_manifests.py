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
from igcore.kubectl.kept import kept_annotation, read_kept
from igcore.kubectl.manifests import (CAPABILITIES, CONFIG_DIR, CREATED_BY, OWNED_FLAGS, WEB_CONFIG_KEY, WEB_DIR,
                                      WRITABLE_DIRS, Values, agent_objects, namespace, render)
from tests.fixtures.requirements import need_binary
from tests.k8s_objects import PROMETHEUS_EXAMPLE, ROOT, by_kind, example_prometheus_config, with_file_sd

KUBERNETES_VERSIONS = ("1.28.0", "1.33.0", kubernetes_validate.latest_version())
OTHER_VALUES = Values(namespace="observability", image="registry.example/ig:1.2", listen_address="[::]:9464",
                      metrics_path="/ig/metrics")
# every option of deploy at once: extra arguments, a TLS web config, a NetworkPolicy, a low port
ALL_OPTIONS = Values(namespace="obs", listen_address="0.0.0.0:443", extra_args=("--max-series=5000", "-v"),
                     web_config=True, tls=True, metrics_from="monitoring")
SECRET_DATA = {WEB_CONFIG_KEY: "dGxzX3NlcnZlcl9jb25maWc6IHt9Cg==", "tls.crt": "LS0t", "tls.key": "LS0t"}


def all_objects(values: Values, secret_data=None) -> list[dict]:
    return [namespace(values), *agent_objects(values, secret_data)]


def test_committed_manifest_is_the_rendered_one():
    assert (ROOT / "deploy" / "ig.yaml").read_text() == render(), \
        "deploy/ig.yaml is stale: regenerate it with `kubectl-gadget deploy -o yaml > deploy/ig.yaml`"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("source", ["deploy", "other-values", "all-options", "prometheus-example"])
def test_valid_under_strict_schemas(source, version):
    objects = {"deploy": lambda: list(yaml.safe_load_all((ROOT / "deploy" / "ig.yaml").read_text())),
               "other-values": lambda: all_objects(OTHER_VALUES),
               "all-options": lambda: all_objects(ALL_OPTIONS, SECRET_DATA),
               "prometheus-example": lambda: list(yaml.safe_load_all(PROMETHEUS_EXAMPLE.read_text()))}[source]()
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_rejects_an_unknown_field():
    """The check above can fail: a misspelt field is an error under the strict schemas."""
    daemon_set = copy.deepcopy(by_kind(agent_objects(Values()), "DaemonSet"))
    daemon_set["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemon_set, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("values", [Values(), OTHER_VALUES, ALL_OPTIONS], ids=["default", "other", "all-options"])
def test_agent_daemon_set_is_consistent(values):
    objects = all_objects(values)
    created = by_kind(objects, "Namespace")
    assert created["metadata"]["name"] == values.namespace
    assert created["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert CREATED_BY in created["metadata"]["annotations"]
    assert by_kind(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    ds = by_kind(objects, "DaemonSet")
    template, pod = ds["spec"]["template"], ds["spec"]["template"]["spec"]
    selector = ds["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    # the pod watch's token is mounted in the agent's pods only (docs/security.md, The agent's API access)
    assert pod["hostPID"] is True and pod["automountServiceAccountToken"] is True
    assert {"operator": "Exists"} in pod["tolerations"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {name: path for name, path, _ in WRITABLE_DIRS}
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes, mount
        if "emptyDir" in volumes[mount["name"]]:  # the only writable places, each an emptyDir with a size limit
            assert writable[mount["name"]] == mount["mountPath"] and volumes[mount["name"]]["emptyDir"]["sizeLimit"]
        else:
            assert mount.get("readOnly") is True, mount
    assert set(writable) <= set(volumes)
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
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/scheme"] == ("https" if values.tls else "http")
    assert "--watch" in args and f"@{CONFIG_DIR}" in args
    assert ("--web-config-file" in args) == values.web_config
    if values.web_config:
        assert args[args.index("--web-config-file") + 1] == f"{WEB_DIR}/{WEB_CONFIG_KEY}"
        assert volumes["web-config"]["secret"]["secretName"] == "ig-web-config"
    assert args[len(args) - len(values.extra_args):] == list(values.extra_args)

    # least privilege: every capability dropped but those named, a read-only root, a versioned image
    security = container["securityContext"]
    assert security["capabilities"]["drop"] == ["ALL"]
    added = set(security["capabilities"]["add"])
    assert added == set(CAPABILITIES) | ({"NET_BIND_SERVICE"} if values.port < 1024 else set())
    assert security["readOnlyRootFilesystem"] is True
    assert "privileged" not in security
    assert not container["image"].endswith(":latest") and ":" in container["image"]

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
    plain, tls = example_prometheus_config()["scrape_configs"]
    assert plain["kubernetes_sd_configs"] == tls["kubernetes_sd_configs"] == [{"role": "pod"}]
    # the https job reads its CA and password from the optional Secret ig-scrape, mounted where it looks
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "ig-scrape")
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "ig-scrape")
    assert volume["secret"] == {"secretName": "ig-scrape", "optional": True}
    assert tls["scheme"] == "https" and tls["tls_config"]["server_name"] == "ig-agent"
    for file in (tls["tls_config"]["ca_file"], tls["basic_auth"]["password_file"]):
        assert file.startswith(mount["mountPath"] + "/")


def test_prometheus_example_as_written_passes_promtool(tmp_path):
    """The text as Prometheus reads it (YAML anchors included), only the discovery swapped."""
    objects = list(yaml.safe_load_all(PROMETHEUS_EXAMPLE.read_text()))
    text = by_kind(objects, "ConfigMap")["data"]["prometheus.yml"]
    assert text.count("kubernetes_sd_configs:\n      - role: pod\n") == 2
    (tmp_path / "targets.json").write_text("[]")
    text = text.replace("kubernetes_sd_configs:\n      - role: pod\n",
                        f"file_sd_configs:\n      - files: [{tmp_path / 'targets.json'}]\n")
    (tmp_path / "prometheus.yml").write_text(text)
    result = subprocess.run([need_binary("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_tag_is_the_package_version():
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert Values().image == f"ig:{version}"
    assert f"image: ig:{version}" in (ROOT / "deploy" / "ig.yaml").read_text()


@pytest.mark.parametrize("values", [Values(), OTHER_VALUES], ids=["default", "other"])
def test_rbac_grants_exactly_the_pod_watch(values):
    """get/list/watch on pods, get on replicasets and jobs, nothing else, bound to the agent's account
    in its own namespace (docs/security.md, The agent's API access)."""
    role, binding = by_kind(agent_objects(values), "ClusterRole"), by_kind(agent_objects(values), "ClusterRoleBinding")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted == {("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
                       ("apps", "replicasets", "get"), ("batch", "jobs", "get")}
    assert all(set(rule) == {"apiGroups", "resources", "verbs"} for rule in role["rules"])   # no resourceNames, no *
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ig", "namespace": values.namespace}]
    assert role["metadata"]["name"] == binding["metadata"]["name"] == f"ig-{values.namespace}"


def test_network_policy_admits_only_the_monitoring_namespace():
    policy = by_kind(agent_objects(ALL_OPTIONS), "NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ig"}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # egress to the API server's ports only (the pod watch), nothing else
    assert spec["egress"] == [{"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}]
    (rule,) = spec["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": "metrics"}]
    assert not [o for o in agent_objects(Values()) if o["kind"] == "NetworkPolicy"]


def test_kept_values_round_trip_through_the_daemon_set():
    kept = read_kept(by_kind(agent_objects(ALL_OPTIONS), "DaemonSet")["metadata"]["annotations"][
        "kubectl-gadget/deploy-values"])
    assert Values(namespace="obs", **kept) == ALL_OPTIONS
    assert kept_annotation(Values()) == '{"extra_args":[],"listen_address":"0.0.0.0:2223","metrics_from":null,' \
        '"metrics_path":"/metrics","pod_monitor":false,"tls":false,"web_config":false}'


@pytest.mark.parametrize("text", ["[]", "{", '{"image": "x"}', '{"extra_args": "--v"}', '{"extra_args": [1]}',
                                  '{"tls": "yes"}', '{"metrics_from": 3}', '{"pod_monitor": 1}', "[" * 100000])
def test_kept_values_from_the_cluster_are_checked(text):
    with pytest.raises(ValueError):
        read_kept(text)


@pytest.mark.parametrize("flag", OWNED_FLAGS)
def test_extra_args_cannot_override_the_rendered_flags(flag):
    from igcore.errors import ConfigError

    with pytest.raises(ConfigError, match="set by kubectl gadget deploy itself"):
        Values(extra_args=(f"{flag}=x",)).check()
