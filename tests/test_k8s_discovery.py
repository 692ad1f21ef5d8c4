"""Prometheus finds the node agent by its pod annotations, with the guide's relabel rules.

A real Prometheus runs the scrape jobs of docs/examples/prometheus.yaml; only its discovery is
file-based (Debian's build has no Kubernetes discovery), over one target that carries the
__meta_kubernetes_pod_* labels Kubernetes discovery would give the rendered pod template. The
agent is a real `ig` started with the rendered container's arguments, its config pushed into a
ConfigMap-like directory (and its web config into a Secret-like one). Nothing but the values
changes between the runs.
"""

from __future__ import annotations

import base64
import json
import ssl
import uuid

import bcrypt
import pytest
import yaml

from igcore.kubectl.manifests import CONFIG_DIR, WEB_CONFIG_KEY, WEB_DIR, Values
from igcore.kubectl.websecret import web_config_data
from tests.fixtures.certs import CertificateAuthority
from tests.fixtures.igrun import IG, free_port, start_command
from tests.k8s_objects import CAT_BY_POD_CONFIG, example_prometheus_config, pod_template, sd_meta_labels, with_file_sd
from tests.kubelet_volume import ConfigMapVolume


def scrape_the_pod(values: Values, docker, busybox_image, prometheus_server, tmp_path, web_dir=None, swap=None,
                   **client):
    """The agent started with the rendered container's arguments (ConfigMap and Secret directories
    mapped to this test's), Prometheus running the example's jobs over one target carrying the
    rendered pod's discovery labels, and a container's 7 `cat`: returns (query result, active targets)."""
    template = pod_template(values)
    (container,) = template["spec"]["containers"]
    volume = ConfigMapVolume(tmp_path / "config")
    volume.write({"config.yaml": CAT_BY_POD_CONFIG})
    mapped = {f"@{CONFIG_DIR}": f"@{volume.root}", f"{WEB_DIR}/{WEB_CONFIG_KEY}": f"{web_dir}/{WEB_CONFIG_KEY}"}
    args = [mapped.get(a, a) for a in container["args"]]
    agent = start_command([IG, *args], values.listen_address, values.metrics_path, tmp_path,
                          env={"NODE_NAME": "node-a"}, scheme=values.scheme, **client)
    try:
        pod = f"ig-{uuid.uuid4().hex[:5]}"
        targets = tmp_path / "targets.json"
        # role=pod gives the pod IP as __address__; the annotation's port is added by relabeling
        targets.write_text(json.dumps([{"targets": ["127.0.0.1"], "labels": sd_meta_labels(template, "gadget", pod)}]))
        config = with_file_sd(example_prometheus_config(), targets)
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        for job in config["scrape_configs"]:
            (swap or (lambda job: None))(job)
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        prometheus = prometheus_server(config_file)

        name = f"ig-k8s-disc-{uuid.uuid4().hex[:8]}"
        docker.run("--network", "none", busybox_image, "sh", "-c", "for i in $(seq 1 7); do cat /dev/null; done",
                   name=name)
        expr = f'executed_processes_total{{k8s_container="{name}", comm="cat"}}'
        result = prometheus.wait_for(expr, lambda r: r and r[0]["value"][1] == "7", timeout=60)
        assert [r["value"][1] for r in result] == ["7"], (result, agent.output())
        labels = result[0]["metric"]
        assert labels["instance"] == values.listen_address
        assert labels["kubernetes_namespace"] == "gadget" and labels["kubernetes_pod_name"] == pod
        assert labels["app_kubernetes_io_name"] == "ig"
        return result, prometheus.api("targets")["activeTargets"]
    finally:
        agent.stop()


@pytest.mark.parametrize("path", ["/metrics", "/ig/v1/metrics"])
def test_prometheus_scrapes_the_annotated_agent(require_bpf, docker, busybox_image, prometheus_server, tmp_path, path):
    # the pod IP is loopback here; the port is a free one (2223 may be taken by another run on this machine)
    values = Values(listen_address=f"127.0.0.1:{free_port()}", metrics_path=path)
    result, (target,) = scrape_the_pod(values, docker, busybox_image, prometheus_server, tmp_path)
    assert target["scrapeUrl"] == f"http://{values.listen_address}{path}"
    assert result[0]["metric"]["job"] == target["labels"]["job"] == "kubernetes-pods"


def test_prometheus_scrapes_the_tls_agent_with_the_example_job(require_bpf, docker, busybox_image, prometheus_server,
                                                               tmp_path):
    """`deploy --web-config-file`: the agent reads the Secret's files where the kubelet puts them (the
    copy of the web config names them so), its pod says https, and the example's ig-agents-https job
    scrapes it with the CA and password of the Secret ig-scrape; kubernetes-pods leaves it alone."""
    ca = CertificateAuthority(tmp_path, "agents CA")
    ca.issue("agent", "ig-agent", dns=("ig-agent",))   # the name the example's job expects, not the pod IP
    password = uuid.uuid4().hex
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "agent.crt", "key_file": "agent.key"},
                                   "basic_auth_users": {"prometheus": bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}}))
    data, tls = web_config_data(web)
    secret = ConfigMapVolume(tmp_path / "web-secret")   # a Secret volume is written the same way
    secret.write({key: base64.b64decode(value).decode() for key, value in data.items()})
    (tmp_path / "password").write_text(password)

    def with_scrape_secret(job):
        if "tls_config" in job:
            job["tls_config"]["ca_file"] = str(ca.cert)
            job["basic_auth"]["password_file"] = str(tmp_path / "password")

    client = ssl.create_default_context(cafile=str(ca.cert))
    client.check_hostname = False   # this test's own scrapes go to 127.0.0.1; Prometheus checks ig-agent
    values = Values(listen_address=f"127.0.0.1:{free_port()}", web_config=True, tls=tls)
    auth = "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode()
    result, (target,) = scrape_the_pod(values, docker, busybox_image, prometheus_server, tmp_path, web_dir=secret.root,
                                       swap=with_scrape_secret, ssl_context=client, headers={"Authorization": auth})
    assert tls and target["scrapeUrl"] == f"https://{values.listen_address}/metrics"
    assert result[0]["metric"]["job"] == target["labels"]["job"] == "ig-agents-https"
