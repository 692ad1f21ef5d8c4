"""Prometheus finds the node agent by its pod annotations, with the guide's relabel rules.

A real Prometheus runs the scrape job of docs/examples/prometheus.yaml; only its discovery is
file-based (Debian's build has no Kubernetes discovery), over one target that carries the
__meta_kubernetes_pod_* labels Kubernetes discovery would give the rendered pod template. The
agent is a real `ig` started with the rendered container's arguments, its config pushed into a
ConfigMap-like directory. Nothing but the values changes between the two runs.
"""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from igcore.kubectl.manifests import CONFIG_DIR, Values
from tests.fixtures.igrun import IG, free_port, start_command
from tests.k8s_objects import CAT_BY_POD_CONFIG, example_prometheus_config, pod_template, sd_meta_labels, with_file_sd
from tests.kubelet_volume import ConfigMapVolume



@pytest.mark.parametrize("path", ["/metrics", "/ig/v1/metrics"])
def test_prometheus_scrapes_the_annotated_agent(require_bpf, docker, busybox_image, prometheus_server, tmp_path, path):
    # the pod IP is loopback here; the port is a free one (2223 may be taken by another run on this machine)
    values = Values(listen_address=f"127.0.0.1:{free_port()}", metrics_path=path)
    template = pod_template(values)
    (container,) = template["spec"]["containers"]
    volume = ConfigMapVolume(tmp_path / "config")
    volume.write({"config.yaml": CAT_BY_POD_CONFIG})
    args = [f"@{volume.root}" if a == f"@{CONFIG_DIR}" else a for a in container["args"]]
    agent = start_command([IG, *args], values.listen_address, path, tmp_path, env={"NODE_NAME": "node-a"})
    try:
        pod = f"ig-{uuid.uuid4().hex[:5]}"
        targets = tmp_path / "targets.json"
        # role=pod gives the pod IP as __address__; the annotation's port is added by relabeling
        targets.write_text(json.dumps([{"targets": ["127.0.0.1"], "labels": sd_meta_labels(template, "gadget", pod)}]))
        config = with_file_sd(example_prometheus_config(), targets)
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
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
        (target,) = prometheus.api("targets")["activeTargets"]
        assert target["scrapeUrl"] == f"http://{values.listen_address}{path}"
    finally:
        agent.stop()
