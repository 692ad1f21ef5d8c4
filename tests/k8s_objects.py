"""Reading the rendered manifests the way the tests need them."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from igcore.kubectl.manifests import Values, agent_objects

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_EXAMPLE = ROOT / "docs" / "examples" / "prometheus.yaml"

# The guide's workload counted per pod: `cat` executions with every Kubernetes column as a label.
CAT_BY_POD_CONFIG = """
metrics_name: guide
metrics:
  - name: executed_processes
    type: counter
    category: trace
    gadget: exec
    selector: ["comm:cat"]
    labels: [k8s.node, k8s.namespace, k8s.pod, k8s.container, comm]
"""


def by_kind(objects: list[dict], kind: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def pod_template(values: Values = Values()) -> dict:
    return by_kind(agent_objects(values), "DaemonSet")["spec"]["template"]


def example_prometheus_config() -> dict:
    """The prometheus.yml embedded in docs/examples/prometheus.yaml."""
    objects = list(yaml.safe_load_all(PROMETHEUS_EXAMPLE.read_text()))
    return yaml.safe_load(by_kind(objects, "ConfigMap")["data"]["prometheus.yml"])


def sd_meta_labels(template: dict, namespace: str, pod: str) -> dict:
    """The __meta_kubernetes_pod_* labels Prometheus's role=pod discovery gives this pod."""
    def clean(name: str) -> str:
        return re.sub(r"[^a-zA-Z0-9_]", "_", name)

    labels = {"__meta_kubernetes_namespace": namespace, "__meta_kubernetes_pod_name": pod}
    for key, value in template["metadata"].get("annotations", {}).items():
        labels[f"__meta_kubernetes_pod_annotation_{clean(key)}"] = value
        labels[f"__meta_kubernetes_pod_annotationpresent_{clean(key)}"] = "true"
    for key, value in template["metadata"].get("labels", {}).items():
        labels[f"__meta_kubernetes_pod_label_{clean(key)}"] = value
    return labels


def with_file_sd(config: dict, targets_file: Path) -> dict:
    """The example's config with kubernetes_sd_configs swapped for file_sd_configs over `targets_file`.

    Debian's prometheus and promtool are built without the Kubernetes discovery (its client
    libraries are not packaged), so they reject `kubernetes_sd_configs`; everything else, the
    guide's relabel rules included, stays as written.
    """
    config = {**config, "scrape_configs": [dict(job) for job in config["scrape_configs"]]}
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": "1s"}]
    return config
