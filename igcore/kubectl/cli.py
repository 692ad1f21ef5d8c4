"""`kubectl gadget`: deploy the node agent, push its config, and exit (no client stays running).

kubectl runs `kubectl-gadget` from PATH with the words after `gadget`. Errors are one red line:
exit 2 for usage and config errors (nothing is sent then), 1 when the cluster says no.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Annotated, Optional

import typer

from ..cli import err, fail, out
from ..configwatch import ConfigFollower, ConfigStatus, config_path
from ..errors import ConfigError, IgError
from . import manifests
from .manifests import CONFIG_MAP, FIELD_MANAGER, NAME, Values

app = typer.Typer(
    name="kubectl gadget",
    help="ig on Kubernetes: a DaemonSet of node agents whose metrics config is a ConfigMap.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

KubeconfigOpt = Annotated[Optional[str], typer.Option("--kubeconfig", help="Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config).")]
ContextOpt = Annotated[Optional[str], typer.Option("--context", help="The kubeconfig context to use.")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the agents.")]
ListenOpt = Annotated[Optional[str], typer.Option("--metrics-listen-address", help="Where the agents serve metrics (HOST:PORT); sets the flag, the container port and the scrape annotations.")]
PathOpt = Annotated[Optional[str], typer.Option("--metrics-path", help="HTTP path of the agents' metrics.")]
DEFAULTS = Values()


def _cluster(kubeconfig, context, namespace):
    from .cluster import Cluster, Target

    return Cluster(Target(kubeconfig, context, namespace))


def _values(namespace: str, listen: Optional[str], path: Optional[str], image: str) -> Values:
    values = Values(namespace=namespace, image=image, listen_address=listen or DEFAULTS.listen_address,
                    metrics_path=path or DEFAULTS.metrics_path)
    values.check()
    return values


def _run(body) -> None:
    try:
        body()
    except IgError as exc:
        raise fail(exc)
    sys.stdout.flush()


@app.command()
def deploy(
    listen: ListenOpt = None,
    path: PathOpt = None,
    image: Annotated[str, typer.Option("--image", help="The agent's container image.")] = DEFAULTS.image,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="yaml: print the manifests instead of applying them.")] = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = DEFAULTS.namespace,
) -> None:
    """Apply the agent's namespace, service account and DaemonSet (server-side apply)."""
    def body():
        if output not in (None, "yaml"):
            raise ConfigError(f"--output {output!r}: only yaml is supported")
        values = _values(namespace, listen, path, image)
        if output == "yaml":
            out.file.write(manifests.render(values))
            return
        cluster = _cluster(kubeconfig, context, namespace)
        for obj in manifests.agent_objects(values):
            cluster.apply(obj)
            out.print(f"{obj['kind'].lower()}/{obj['metadata']['name']} applied (field manager {FIELD_MANAGER})")
        out.print(f"Agents serve http://<pod IP>:{values.port}{values.metrics_path}; "
                  f"push a config with: kubectl gadget prometheus --config @FILE -n {namespace}")
    _run(body)


@app.command()
def undeploy(kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
             namespace: NamespaceOpt = DEFAULTS.namespace) -> None:
    """Delete the agents, their config and, if deploy created it, their namespace."""
    def body():
        cluster = _cluster(kubeconfig, context, namespace)
        if cluster.namespace_is_ours():
            cluster.delete("Namespace", namespace)
            out.print(f"namespace/{namespace} deleted, with everything in it")
            return
        gone = [f"{kind.lower()}/{name}" for kind, name in
                (("DaemonSet", NAME), ("ConfigMap", CONFIG_MAP), ("ServiceAccount", NAME)) if cluster.delete(kind, name)]
        out.print(f"deleted {', '.join(gone)}" if gone else f"ig is not deployed in namespace {namespace}")
    _run(body)


@app.command()
def prometheus(
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="Metrics config to push: @path/to/file.yaml.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the config: the agents stop publishing metrics.")] = False,
    show: Annotated[bool, typer.Option("--show", help="Print the config in force.")] = False,
    listen: ListenOpt = None,
    path: PathOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = DEFAULTS.namespace,
) -> None:
    """Validate a config locally, write it to the agents' ConfigMap, and exit; the agents reload it."""
    def body():
        if [config is not None, delete, show].count(True) != 1:
            raise ConfigError("give exactly one of --config @FILE, --delete, --show")
        if show:
            _show(_cluster(kubeconfig, context, namespace), namespace)
        elif delete:
            _delete(_cluster(kubeconfig, context, namespace), namespace)
        else:
            text = _checked(config)  # before any connection: a bad file contacts nothing
            cluster = _cluster(kubeconfig, context, namespace)
            if listen or path:
                values = _values(namespace, listen, path, cluster.agent_image())
                cluster.apply(manifests.daemon_set(values))
                out.print(f"daemonset/{NAME}: agents now serve http://<pod IP>:{values.port}{values.metrics_path}")
            _push(cluster, namespace, text)
    _run(body)


def _checked(config: str) -> str:
    """The file's text, after the same validation as `ig prometheus --check`."""
    from ..plugins import load_catalog

    if config_path(config) is None:
        raise ConfigError("--config takes @path/to/file.yaml")
    ConfigFollower(config, load_catalog(), ConfigStatus()).first()
    return config_path(config).read_text(encoding="utf-8")


def _push(cluster, namespace: str, text: str) -> None:
    cluster.apply(manifests.config_map(Values(namespace=namespace), text))
    digest = hashlib.sha256(text.encode()).hexdigest()
    out.print(f"configmap/{CONFIG_MAP} applied in namespace {namespace} (field manager {FIELD_MANAGER})")
    _pods_will_load(cluster, namespace, f'ig_config_info{{sha256="{digest}"}}')


def _delete(cluster, namespace: str) -> None:
    if not cluster.delete("ConfigMap", CONFIG_MAP):
        out.print(f"no config in namespace {namespace}: nothing to delete")
        return
    out.print(f"configmap/{CONFIG_MAP} deleted in namespace {namespace}")
    _pods_will_load(cluster, namespace, "absent(ig_config_info)")


def _pods_will_load(cluster, namespace: str, query: str) -> None:
    pods = cluster.agent_pods()
    if not pods:
        err.print(f"[yellow]No agent pods in namespace {namespace} yet: deploy them with kubectl gadget deploy -n {namespace}[/]")
        return
    out.print(f"{len(pods)} agent pod(s) will pick it up at the kubelet's next sync (usually within a minute):")
    for pod in sorted(pods, key=lambda p: p.node):
        out.print(f"  {pod.node:<30} {pod.name} ({pod.phase})")
    out.print(f"Watch the rollout in Prometheus: {query}")


def _show(cluster, namespace: str) -> None:
    text = cluster.config_text()
    if text is None:
        out.print(f"no config in namespace {namespace}: the agents serve their own metrics only")
        return
    out.print(f"# configmap/{CONFIG_MAP} in namespace {namespace}, sha256 {hashlib.sha256(text.encode()).hexdigest()}")
    out.file.write(text)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
