"""The node agent's manifests, rendered from one set of values.

The scrape annotations, the PodMonitor, the container port and the agent's
`--metrics-listen-address` all come from `Values.listen_address` (the path from
`Values.metrics_path`, the scheme from `Values.tls`; both discovery styles through
`scrape_endpoint`), so they cannot disagree. deploy/ig.yaml is this module's output for the default values (a test
keeps them equal). What each capability and writable directory is for: docs/security.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from .. import __version__
from ..configwatch import CONFIG_KEY
from ..errors import ConfigError
from ..http import parse_listen_address
from ..probes import HEALTHZ, READYZ
from .kept import KEPT_ANNOTATION, kept_annotation

NAME = "ig"
CONFIG_MAP = "ig-config"
CONFIG_DIR = "/etc/ig/config"
WEB_SECRET = "ig-web-config"
WEB_DIR = "/etc/ig/web"
WEB_CONFIG_KEY = "web-config.yml"
NETWORK_POLICY = "ig-metrics"
POD_MONITOR = "ig"
POD_MONITOR_API = "monitoring.coreos.com/v1"   # the Prometheus Operator's
METRICS_PORT = "metrics"   # the container port's name: what the PodMonitor, probes and NetworkPolicy name
FIELD_MANAGER = "kubectl-gadget"
IMAGE = f"ig:{__version__}"  # the image of this release, never a moving tag
SELECTOR = {"app.kubernetes.io/name": NAME}
# Set only in the body of deploy's create: `undeploy` deletes a namespace only when it carries it.
CREATED_BY = "kubectl-gadget/created-by"
POD_SECURITY_LEVEL = "pod-security.kubernetes.io/enforce"

# What bcc and the socket filters need, as capabilities instead of `privileged` (all others dropped):
CAPABILITIES = {
    "SYS_ADMIN": "bpf() and perf_event_open() for tracepoints on every kernel; "
                 "setns() into the host's cgroup namespace",
    "BPF": "bpf() on kernels >= 5.8 (runtimes that know it)",
    "PERFMON": "perf_event_open() for tracepoints on kernels >= 5.8 (runtimes that know it)",
    "NET_RAW": "the dns gadget's packet sockets with a BPF socket filter",
    "NET_ADMIN": "the dns gadget's socket options in other network namespaces",
    "SYS_PTRACE": "reading /proc/PID/ns/* and /proc/PID/cgroup of other processes (container enrichment)",
    "SYS_RESOURCE": "raising RLIMIT_MEMLOCK for BPF maps on kernels < 5.11",
    "IPC_LOCK": "locking BPF map and ring-buffer memory",
    "SYSLOG": "reading kernel addresses in /proc/kallsyms (bcc)",
}
LOW_PORT_CAPABILITY = "NET_BIND_SERVICE"  # added only for a metrics port below 1024

# Host paths container enrichment and bcc read, all read-only: (volume, host path, mount path).
HOST_MOUNTS = (
    ("run", "/run", "/run"),                          # runtimes' state dirs and sockets (runc, containerd, ...)
    ("cgroup", "/sys/fs/cgroup", "/sys/fs/cgroup"),   # cgroup ids -> containers
    ("tracefs", "/sys/kernel/tracing", "/sys/kernel/tracing"),
    ("debugfs", "/sys/kernel/debug", "/sys/kernel/debug"),
    ("modules", "/lib/modules", "/host/lib/modules"),  # node kernel headers, when it has them
    ("usr-src", "/usr/src", "/host/usr/src"),
)

# The only writable places under the read-only root file system: (volume, mount path, size limit).
WRITABLE_DIRS = (
    ("lib-modules", "/lib/modules", "1Mi"),  # deploy/entrypoint.sh links the kernel headers here for bcc
    ("tmp", "/tmp", "64Mi"),                 # ig's compiler thread's short kallsyms (igcore/bpf/private_kallsyms.py)
)

# Flags the rendered arguments own: as extra arguments they would disagree with the annotations.
OWNED_FLAGS = ("--config", "-c", "--watch", "--no-watch", "--metrics-listen-address", "--metrics-path",
               "--web-config-file", "--check")
MAX_EXTRA_ARGS = 32
MAX_ARG_LENGTH = 1024
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def check_namespace_name(name: str, option: str) -> None:
    if not _DNS_LABEL.fullmatch(name):
        raise ConfigError(f"{option} {name[:80]!r} is not a namespace name (lower-case letters, digits and '-', "
                          "at most 63)")


def check_extra_args(args: tuple[str, ...]) -> None:
    if len(args) > MAX_EXTRA_ARGS:
        raise ConfigError(f"--extra-arg given {len(args)} times: at most {MAX_EXTRA_ARGS}")
    for arg in args:
        if not isinstance(arg, str) or len(arg) > MAX_ARG_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in arg):
            raise ConfigError(f"--extra-arg {str(arg)[:80]!r}: at most {MAX_ARG_LENGTH} characters, "
                              "no control characters")
        flag = arg.split("=", 1)[0]
        if flag in OWNED_FLAGS:
            raise ConfigError(f"--extra-arg {arg[:80]!r}: {flag} is set by kubectl gadget deploy itself "
                              "(use its own option)")


@dataclass(frozen=True)
class Values:
    namespace: str = "gadget"
    image: str = IMAGE
    listen_address: str = "0.0.0.0:2223"
    metrics_path: str = "/metrics"
    extra_args: tuple[str, ...] = ()        # operator's arguments, appended to the rendered ones
    web_config: bool = False                # the web config Secret is mounted and passed to ig
    tls: bool = False                       # ... and it has tls_server_config: scheme https
    metrics_from: str | None = None         # the NetworkPolicy admits only this namespace
    pod_monitor: bool = False               # a PodMonitor for the Prometheus Operator, beside the annotations
    resources: dict = field(default_factory=lambda: {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},  # bcc's compiler needs a few hundred MiB at start
    })

    @property
    def port(self) -> int:
        return parse_listen_address(self.listen_address)[1]

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def check(self) -> None:
        check_namespace_name(self.namespace, "--namespace")
        parse_listen_address(self.listen_address)
        if not self.metrics_path.startswith("/"):
            raise ConfigError(f"--metrics-path {self.metrics_path!r} must start with /")
        check_extra_args(self.extra_args)
        if self.tls and not self.web_config:
            raise ConfigError("TLS needs a --web-config-file")
        if self.metrics_from is not None:
            check_namespace_name(self.metrics_from, "--network-policy")


def agent_args(values: Values) -> list[str]:
    args = ["prometheus", "--config", f"@{CONFIG_DIR}", "--watch",
            "--metrics-listen-address", values.listen_address, "--metrics-path", values.metrics_path]
    if values.web_config:
        args += ["--web-config-file", f"{WEB_DIR}/{WEB_CONFIG_KEY}"]
    return args + list(values.extra_args)


def namespace(values: Values) -> dict:
    """The body of deploy's create: never applied to a namespace that exists."""
    levels = {f"pod-security.kubernetes.io/{mode}": "privileged" for mode in ("enforce", "audit", "warn")}
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": values.namespace, "labels": {**SELECTOR, **levels},
                         "annotations": {CREATED_BY: "kubectl gadget deploy"}}}


def service_account(values: Values) -> dict:
    # No token for pods that merely name it: the agent's pod template mounts one itself.
    return {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": False,
            "metadata": {"name": NAME, "namespace": values.namespace, "labels": dict(SELECTOR)}}


# What the agent's watch of its node's pods reads (docs/security.md, The agent's API access):
# pods' labels and owners, and the ReplicaSet or Job between a pod and its Deployment or CronJob.
RBAC_RULES = (
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]},
)


def cluster_role_name(values: Values) -> str:
    """Cluster-wide names: one per namespace the agents are deployed in."""
    return f"{NAME}-{values.namespace}"


def cluster_role(values: Values) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": cluster_role_name(values), "labels": dict(SELECTOR)},
            "rules": [dict(rule) for rule in RBAC_RULES]}


def cluster_role_binding(values: Values) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_role_name(values), "labels": dict(SELECTOR)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": cluster_role_name(values)},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": values.namespace}]}


def config_map(values: Values, text: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": values.namespace, "labels": dict(SELECTOR)},
            "data": {CONFIG_KEY: text}}


def web_config_secret(values: Values, data: dict[str, str]) -> dict:
    """`data`: base64 file contents by key (igcore/kubectl/websecret.py makes them)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": WEB_SECRET, "namespace": values.namespace, "labels": dict(SELECTOR)},
            "data": data}


# The API server's ports the pod watch connects to: the `kubernetes` Service's, and its endpoints'
# usual one (most network plugins apply a policy after the Service's translation).
API_SERVER_PORTS = (443, 6443)


def network_policy(values: Values) -> dict:
    """Only pods of `values.metrics_from` reach the metrics port; the agent itself sends nothing but
    its pod watch's requests to the API server's ports."""
    admitted = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": values.metrics_from}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": NETWORK_POLICY, "namespace": values.namespace, "labels": dict(SELECTOR)},
            "spec": {"podSelector": {"matchLabels": dict(SELECTOR)},
                     "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"from": [admitted], "ports": [{"protocol": "TCP", "port": METRICS_PORT}]}],
                     "egress": [{"ports": [{"protocol": "TCP", "port": p} for p in API_SERVER_PORTS]}]}}


@dataclass(frozen=True)
class ScrapeEndpoint:
    port: int
    path: str
    scheme: str


def scrape_endpoint(values: Values) -> ScrapeEndpoint:
    """Where Prometheus scrapes an agent: the one source of the annotations and the PodMonitor."""
    return ScrapeEndpoint(values.port, values.metrics_path, values.scheme)


def pod_monitor(values: Values) -> dict:
    """The Prometheus Operator's discovery of the agents (docs/guide.md, Prometheus): the port by
    its name, which names `scrape_endpoint`'s port in the container."""
    endpoint = scrape_endpoint(values)
    return {"apiVersion": POD_MONITOR_API, "kind": "PodMonitor",
            "metadata": {"name": POD_MONITOR, "namespace": values.namespace, "labels": dict(SELECTOR)},
            "spec": {"selector": {"matchLabels": dict(SELECTOR)},
                     "namespaceSelector": {"matchNames": [values.namespace]},
                     "podMetricsEndpoints": [{"port": METRICS_PORT, "path": endpoint.path,
                                              "scheme": endpoint.scheme}]}}


def pod_annotations(values: Values) -> dict:
    endpoint = scrape_endpoint(values)
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(endpoint.port),
        "prometheus.io/path": endpoint.path,
        "prometheus.io/scheme": endpoint.scheme,
        # bpf() and perf_event_open() are outside the runtimes' default AppArmor profile
        f"container.apparmor.security.beta.kubernetes.io/{NAME}": "unconfined",
    }


def capabilities(values: Values) -> list[str]:
    return list(CAPABILITIES) + ([LOW_PORT_CAPABILITY] if values.port < 1024 else [])


def container(values: Values) -> dict:
    def probe(path: str) -> dict:  # answered without auth and without a scrape (docs/guide.md, Health probes)
        return {"httpGet": {"path": path, "port": METRICS_PORT, "scheme": values.scheme.upper()}, "timeoutSeconds": 5}
    mounts = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}]  # a directory, never subPath
    if values.web_config:
        mounts.append({"name": "web-config", "mountPath": WEB_DIR, "readOnly": True})
    mounts += [{"name": volume, "mountPath": path, "readOnly": True} for volume, _, path in HOST_MOUNTS]
    mounts += [{"name": volume, "mountPath": path} for volume, path, _ in WRITABLE_DIRS]
    return {
        "name": NAME,
        "image": values.image,
        "imagePullPolicy": "IfNotPresent",
        "args": agent_args(values),
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "ports": [{"name": METRICS_PORT, "containerPort": scrape_endpoint(values).port, "protocol": "TCP"}],
        "securityContext": {
            "capabilities": {"drop": ["ALL"], "add": capabilities(values)},
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "Unconfined"},
        },
        "resources": values.resources,
        "startupProbe": {**probe(HEALTHZ), "periodSeconds": 5, "failureThreshold": 60},  # bcc compiles at start
        "readinessProbe": {**probe(READYZ), "periodSeconds": 10},
        "livenessProbe": {**probe(HEALTHZ), "periodSeconds": 20, "failureThreshold": 3},
        "volumeMounts": mounts,
    }


def volumes(values: Values) -> list[dict]:
    found = [{"name": "config", "configMap": {"name": CONFIG_MAP, "optional": True}}]
    if values.web_config:  # not optional: an agent must never serve plain HTTP in place of TLS
        found.append({"name": "web-config", "secret": {"secretName": WEB_SECRET, "defaultMode": 0o400}})
    found += [{"name": volume, "hostPath": {"path": host}} for volume, host, _ in HOST_MOUNTS]
    found += [{"name": volume, "emptyDir": {"sizeLimit": size}} for volume, _, size in WRITABLE_DIRS]
    return found


def daemon_set(values: Values) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": values.namespace, "labels": dict(SELECTOR),
                     "annotations": {KEPT_ANNOTATION: kept_annotation(values)}},
        "spec": {
            "selector": {"matchLabels": dict(SELECTOR)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(SELECTOR), "annotations": pod_annotations(values)},
                "spec": {
                    "serviceAccountName": NAME,
                    "automountServiceAccountToken": True,   # the pod watch's token (docs/security.md)
                    "hostPID": True,
                    "tolerations": [{"operator": "Exists"}],  # every taint: every node gets an agent
                    "priorityClassName": "system-node-critical",
                    "containers": [container(values)],
                    "volumes": volumes(values),
                },
            },
        },
    }


def endpoint_objects(values: Values) -> list[dict]:
    """The objects that carry the scrape endpoint: re-applied together when it changes."""
    return [daemon_set(values), *([pod_monitor(values)] if values.pod_monitor else [])]


def agent_objects(values: Values, secret_data: dict[str, str] | None = None) -> list[dict]:
    """What deploy applies after its namespace exists (the Secret when `secret_data` is given)."""
    values.check()
    objects = [service_account(values), cluster_role(values), cluster_role_binding(values)]
    if secret_data is not None:
        objects.append(web_config_secret(values, secret_data))
    objects.append(daemon_set(values))
    if values.metrics_from is not None:
        objects.append(network_policy(values))
    return objects + endpoint_objects(values)[1:]


def to_yaml(objects: list[dict]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, width=120)


HEADER = "# Rendered by `kubectl gadget deploy -o yaml` (igcore/kubectl/manifests.py); do not edit by hand.\n"


def render(values: Values = Values(), secret_data: dict[str, str] | None = None, with_namespace: bool = True) -> str:
    """`with_namespace=False` for --use-existing-namespace: an apply of this output writes no namespace."""
    return HEADER + to_yaml([namespace(values)] * with_namespace + agent_objects(values, secret_data))
