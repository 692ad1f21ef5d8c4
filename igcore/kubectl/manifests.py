"""The node agent's manifests, rendered from one set of values.

The scrape annotations, the container port and the agent's `--metrics-listen-address` all come
from `Values.listen_address` (and the path from `Values.metrics_path`), so they cannot disagree.
deploy/ig.yaml is this module's output for the default values (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from ..configwatch import CONFIG_KEY
from ..errors import ConfigError
from ..http import parse_listen_address
from ..probes import HEALTHZ, READYZ

NAME = "ig"
CONFIG_MAP = "ig-config"
CONFIG_DIR = "/etc/ig/config"
FIELD_MANAGER = "kubectl-gadget"
SCHEME = "http"  # ig serves plain HTTP
SELECTOR = {"app.kubernetes.io/name": NAME}

# What bcc and the socket filters need, as capabilities instead of `privileged`:
CAPABILITIES = {
    "SYS_ADMIN": "bpf() and perf_event_open() for tracepoints on every kernel; setns() into the host's cgroup namespace",
    "BPF": "bpf() on kernels >= 5.8 (runtimes that know it)",
    "PERFMON": "perf_event_open() for tracepoints on kernels >= 5.8 (runtimes that know it)",
    "NET_RAW": "the dns gadget's packet sockets with a BPF socket filter",
    "NET_ADMIN": "the dns gadget's socket options in other network namespaces",
    "SYS_PTRACE": "reading /proc/PID/ns/* and /proc/PID/cgroup of other processes (container enrichment)",
    "SYS_RESOURCE": "raising RLIMIT_MEMLOCK for BPF maps on kernels < 5.11",
    "IPC_LOCK": "locking BPF map and ring-buffer memory",
    "SYSLOG": "reading kernel addresses in /proc/kallsyms (bcc)",
}

# Host paths container enrichment and bcc read, all read-only: (volume, host path, mount path).
HOST_MOUNTS = (
    ("run", "/run", "/run"),                          # runtimes' state dirs and sockets (runc, containerd, docker, cri-o)
    ("cgroup", "/sys/fs/cgroup", "/sys/fs/cgroup"),   # cgroup ids -> containers
    ("tracefs", "/sys/kernel/tracing", "/sys/kernel/tracing"),
    ("debugfs", "/sys/kernel/debug", "/sys/kernel/debug"),
    ("modules", "/lib/modules", "/host/lib/modules"),  # node kernel headers, when it has them
    ("usr-src", "/usr/src", "/host/usr/src"),
)


@dataclass(frozen=True)
class Values:
    namespace: str = "gadget"
    image: str = "ig:latest"
    listen_address: str = "0.0.0.0:2223"
    metrics_path: str = "/metrics"
    resources: dict = field(default_factory=lambda: {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},  # bcc's compiler needs a few hundred MiB at start
    })

    @property
    def port(self) -> int:
        return parse_listen_address(self.listen_address)[1]

    def check(self) -> None:
        parse_listen_address(self.listen_address)
        if not self.metrics_path.startswith("/"):
            raise ConfigError(f"--metrics-path {self.metrics_path!r} must start with /")


def agent_args(values: Values) -> list[str]:
    return ["prometheus", "--config", f"@{CONFIG_DIR}", "--watch",
            "--metrics-listen-address", values.listen_address, "--metrics-path", values.metrics_path]


def namespace(values: Values) -> dict:
    levels = {f"pod-security.kubernetes.io/{mode}": "privileged" for mode in ("enforce", "audit", "warn")}
    # our label: `kubectl gadget undeploy` deletes a namespace only if deploy created it
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": values.namespace, "labels": {**SELECTOR, **levels}}}


def service_account(values: Values) -> dict:
    # The agent reads pod identity from the runtime's OCI annotations: it never calls the API.
    return {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": False,
            "metadata": {"name": NAME, "namespace": values.namespace, "labels": dict(SELECTOR)}}


def config_map(values: Values, text: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": values.namespace, "labels": dict(SELECTOR)},
            "data": {CONFIG_KEY: text}}


def pod_annotations(values: Values) -> dict:
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(values.port),
        "prometheus.io/path": values.metrics_path,
        "prometheus.io/scheme": SCHEME,
        # bpf() and perf_event_open() are outside the runtimes' default AppArmor profile
        f"container.apparmor.security.beta.kubernetes.io/{NAME}": "unconfined",
    }


def container(values: Values) -> dict:
    def probe(path: str) -> dict:  # answered without auth and without a scrape (docs/guide.md, Health probes)
        return {"httpGet": {"path": path, "port": "metrics", "scheme": SCHEME.upper()}, "timeoutSeconds": 5}
    mounts = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}]  # a directory, never subPath
    mounts += [{"name": volume, "mountPath": path, "readOnly": True} for volume, _, path in HOST_MOUNTS]
    return {
        "name": NAME,
        "image": values.image,
        "imagePullPolicy": "IfNotPresent",
        "args": agent_args(values),
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "ports": [{"name": "metrics", "containerPort": values.port, "protocol": "TCP"}],
        "securityContext": {
            "capabilities": {"add": list(CAPABILITIES)},
            "seccompProfile": {"type": "Unconfined"},
        },
        "resources": values.resources,
        "startupProbe": {**probe(HEALTHZ), "periodSeconds": 5, "failureThreshold": 60},  # bcc compiles at start
        "readinessProbe": {**probe(READYZ), "periodSeconds": 10},
        "livenessProbe": {**probe(HEALTHZ), "periodSeconds": 20, "failureThreshold": 3},
        "volumeMounts": mounts,
    }


def daemon_set(values: Values) -> dict:
    volumes = [{"name": "config", "configMap": {"name": CONFIG_MAP, "optional": True}}]
    volumes += [{"name": volume, "hostPath": {"path": host}} for volume, host, _ in HOST_MOUNTS]
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": values.namespace, "labels": dict(SELECTOR)},
        "spec": {
            "selector": {"matchLabels": dict(SELECTOR)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(SELECTOR), "annotations": pod_annotations(values)},
                "spec": {
                    "serviceAccountName": NAME,
                    "automountServiceAccountToken": False,
                    "hostPID": True,
                    "tolerations": [{"operator": "Exists"}],  # every taint: every node gets an agent
                    "priorityClassName": "system-node-critical",
                    "containers": [container(values)],
                    "volumes": volumes,
                },
            },
        },
    }


def agent_objects(values: Values) -> list[dict]:
    values.check()
    return [namespace(values), service_account(values), daemon_set(values)]


def to_yaml(objects: list[dict]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, width=120)


HEADER = "# Rendered by `kubectl gadget deploy -o yaml` (igcore/kubectl/manifests.py); do not edit by hand.\n"


def render(values: Values = Values()) -> str:
    return HEADER + to_yaml(agent_objects(values))
