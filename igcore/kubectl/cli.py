"""`kubectl gadget`: deploy the node agent, push its config, and exit (no client stays running).

kubectl runs `kubectl-gadget` from PATH with the words after `gadget`. Errors are one red line:
exit 2 for usage and config errors (nothing is sent then), 1 when the cluster says no.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..cli import err, fail, out
from ..configwatch import ConfigFollower, ConfigStatus, config_path
from ..errors import ConfigError, IgError, RuntimeFailure
from . import manifests
from .manifests import (CONFIG_MAP, FIELD_MANAGER, NAME, NETWORK_POLICY, POD_MONITOR, WEB_SECRET, Values,
                        check_namespace_name)

app = typer.Typer(
    name="kubectl gadget",
    help="ig on Kubernetes: a DaemonSet of node agents whose metrics config is a ConfigMap.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

KubeconfigOpt = Annotated[Optional[str], typer.Option("--kubeconfig", help="Path to the kubeconfig file (default: "
                                                                           "$KUBECONFIG, ~/.kube/config).")]
ContextOpt = Annotated[Optional[str], typer.Option("--context", help="The kubeconfig context to use.")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the agents.")]
ListenOpt = Annotated[Optional[str], typer.Option(
    "--metrics-listen-address", help="Where the agents serve metrics (HOST:PORT); sets the flag, the container port "
                                     "and the scrape annotations. Kept by later deploys.")]
PathOpt = Annotated[Optional[str], typer.Option("--metrics-path", help="HTTP path of the agents' metrics. Kept by "
                                                                       "later deploys.")]
DEFAULTS = Values()


def _cluster(kubeconfig, context, namespace):
    from .cluster import Cluster, Target

    return Cluster(Target(kubeconfig, context, namespace))


def _values(namespace: str, image: str, kept: dict, given: dict) -> Values:
    """The options given on this command line over those an earlier deploy kept."""
    values = Values(namespace=namespace, image=image, **{**kept, **given})
    values.check()
    return values


def _kept(deployed, namespace: str) -> dict:
    """What the deployed DaemonSet says an earlier deploy was told; nothing if it is not readable."""
    from .kept import KEPT_ANNOTATION, read_kept

    if deployed is None:
        return {}
    try:
        kept = read_kept(deployed.kept)
        Values(namespace=namespace, **kept).check()
    except (ValueError, TypeError, ConfigError) as exc:
        err.print(f"[yellow]daemonset/{NAME}: its annotation {KEPT_ANNOTATION} is not what deploy writes "
                  f"({escape(str(exc))}): earlier options are not kept[/]", soft_wrap=True)
        return {}
    return kept


def _run(body) -> None:
    try:
        body()
    except IgError as exc:
        raise fail(exc) from None
    sys.stdout.flush()


def _given(listen, path, extra_arg, no_extra_args, web_tls, no_web_config, network_policy, no_network_policy,
           pod_monitor=False, no_pod_monitor=False) -> dict:
    """The Values fields this command line sets; the others keep what an earlier deploy set."""
    for option, other in ((extra_arg, no_extra_args), (web_tls is not None, no_web_config),
                          (network_policy is not None, no_network_policy), (pod_monitor, no_pod_monitor)):
        if option and other:
            raise ConfigError("an option and its --no-... form cannot be given together")
    given = {"listen_address": listen, "metrics_path": path}
    given = {key: value for key, value in given.items() if value is not None}
    if extra_arg or no_extra_args:
        given["extra_args"] = tuple(extra_arg or ())
    if web_tls is not None or no_web_config:
        given.update(web_config=web_tls is not None, tls=bool(web_tls))
    if network_policy is not None or no_network_policy:
        given["metrics_from"] = network_policy
    if pod_monitor or no_pod_monitor:
        given["pod_monitor"] = pod_monitor
    return given


@app.command()
def deploy(
    listen: ListenOpt = None,
    path: PathOpt = None,
    image: Annotated[str, typer.Option(
        "--image", help="The agent's container image (default: this release's).")] = DEFAULTS.image,
    extra_arg: Annotated[Optional[list[str]], typer.Option(
        "--extra-arg", help="An argument for the agents' `ig prometheus`, e.g. --extra-arg=--max-series=5000 (repeat "
                            "for more). Replaces those of earlier deploys, which are kept when it is not given.")
    ] = None,
    no_extra_args: Annotated[bool, typer.Option(
        "--no-extra-args", help="Drop the --extra-arg of earlier deploys.")] = False,
    web_config_file: Annotated[Optional[Path], typer.Option(
        "--web-config-file", help="TLS and basic auth for the agents (docs/security.md), sent as a Secret with the "
                                  "files it names. Kept by later deploys.")] = None,
    no_web_config: Annotated[bool, typer.Option("--no-web-config", help="Serve plain HTTP again and delete the web "
                                                                        "config Secret.")] = False,
    network_policy: Annotated[Optional[str], typer.Option(
        "--network-policy", metavar="NAMESPACE", help="Add a NetworkPolicy that admits only pods of NAMESPACE (e.g. "
                                                      "monitoring) to the metrics port. Kept by later deploys.")
    ] = None,
    no_network_policy: Annotated[bool, typer.Option("--no-network-policy", help="Delete the NetworkPolicy.")] = False,
    pod_monitor: Annotated[bool, typer.Option(
        "--pod-monitor", help="Add a PodMonitor (monitoring.coreos.com/v1) for the Prometheus Operator, with the "
                              "port, path and scheme of the scrape annotations. Kept by later deploys.")] = False,
    no_pod_monitor: Annotated[bool, typer.Option("--no-pod-monitor", help="Delete the PodMonitor.")] = False,
    use_existing_namespace: Annotated[bool, typer.Option(
        "--use-existing-namespace", help="Deploy into a namespace that deploy did not create, changing none of its "
                                         "labels; undeploy will not delete it.")] = False,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="yaml: print the manifests instead of "
                                                                         "applying them.")] = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = DEFAULTS.namespace,
) -> None:
    """Create the agents' namespace (never adopting one), then apply their service account and DaemonSet."""
    from .ownership import claim_namespace
    from .websecret import web_config_data

    def body():
        if output not in (None, "yaml"):
            raise ConfigError(f"--output {output!r}: only yaml is supported")
        secret, web_tls = web_config_data(web_config_file) if web_config_file is not None else (None, None)
        given = _given(listen, path, extra_arg, no_extra_args, web_tls, no_web_config, network_policy,
                       no_network_policy, pod_monitor, no_pod_monitor)
        values = _values(namespace, image, {}, given)  # every local check before any connection
        if output == "yaml":
            out.file.write(manifests.render(values, secret, with_namespace=not use_existing_namespace))
            return
        cluster = _cluster(kubeconfig, context, namespace)
        claim = claim_namespace(cluster, values, use_existing_namespace)
        out.print(
            f"namespace/{namespace} created" if claim.created else f"namespace/{namespace} exists: left unchanged")
        if claim.warning:
            err.print(f"[yellow]{escape(claim.warning)}[/]", soft_wrap=True)
        kept = {} if claim.created else _kept(cluster.deployed_agent(), namespace)
        values = _values(namespace, image, kept, given)
        for obj in manifests.agent_objects(values, secret):
            cluster.apply(obj)
            out.print(f"{obj['kind'].lower()}/{obj['metadata']['name']} applied (field manager {FIELD_MANAGER})")
        # what an earlier deploy added and this one was told to remove
        for kind, name, dropped in (("Secret", WEB_SECRET, kept.get("web_config") and not values.web_config),
                                    ("NetworkPolicy", NETWORK_POLICY,
                                     kept.get("metrics_from") and not values.metrics_from),
                                    ("PodMonitor", POD_MONITOR, kept.get("pod_monitor") and not values.pod_monitor)):
            if dropped and cluster.delete(kind, name):
                out.print(f"{kind.lower()}/{name} deleted")
        out.print(f"Agents serve {values.scheme}://<pod IP>:{values.port}{values.metrics_path}; "
                  f"push a config with: kubectl gadget prometheus --config @FILE -n {namespace}")
    _run(body)


@app.command()
def undeploy(kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
             namespace: NamespaceOpt = DEFAULTS.namespace) -> None:
    """Delete the agents, their config and, if deploy created it, their namespace."""
    from .ownership import is_ours

    def body():
        check_namespace_name(namespace, "--namespace")
        cluster = _cluster(kubeconfig, context, namespace)
        meta = cluster.namespace_meta()
        # cluster-wide: a namespace's deletion leaves them
        role = manifests.cluster_role_name(Values(namespace=namespace))
        rbac = [f"{kind.lower()}/{role}" for kind in ("ClusterRoleBinding", "ClusterRole")
                if cluster.delete(kind, role)]
        if rbac:
            out.print(f"deleted {', '.join(rbac)}")
        if is_ours(meta):
            cluster.delete("Namespace", namespace)
            out.print(f"namespace/{namespace} deleted, with everything in it")
            return
        gone = [f"{kind.lower()}/{name}" for kind, name in
                (("DaemonSet", NAME), ("NetworkPolicy", NETWORK_POLICY), ("PodMonitor", POD_MONITOR),
                 ("Secret", WEB_SECRET), ("ConfigMap", CONFIG_MAP), ("ServiceAccount", NAME))
                if cluster.delete(kind, name)]
        out.print(f"deleted {', '.join(gone)}" if gone else f"ig is not deployed in namespace {namespace}")
        if meta is not None:
            out.print(f"namespace/{namespace} kept: kubectl gadget deploy did not create it")
    _run(body)


@app.command()
def prometheus(
    config: Annotated[Optional[str], typer.Option(
        "--config", "-c", help="Metrics config to push: @path/to/file.yaml.")] = None,
    delete: Annotated[bool, typer.Option(
        "--delete", help="Remove the config: the agents stop publishing metrics.")] = False,
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
        Values(namespace=namespace, listen_address=listen or DEFAULTS.listen_address,
               metrics_path=path or DEFAULTS.metrics_path).check()
        if show:
            _show(_cluster(kubeconfig, context, namespace), namespace)
        elif delete:
            _delete(_cluster(kubeconfig, context, namespace), namespace)
        else:
            text = _checked(config)  # before any connection: a bad file contacts nothing
            cluster = _cluster(kubeconfig, context, namespace)
            if listen or path:
                deployed = cluster.deployed_agent()
                if deployed is None:
                    raise RuntimeFailure(f"daemonset {NAME} is not in namespace {namespace}: "
                                         f"deploy it first: kubectl gadget deploy -n {namespace}")
                given = {key: value for key, value in (("listen_address", listen), ("metrics_path", path)) if value}
                values = _values(namespace, deployed.image, _kept(deployed, namespace), given)
                for obj in manifests.endpoint_objects(values):   # the DaemonSet, and the PodMonitor if kept
                    cluster.apply(obj)
                out.print(f"daemonset/{NAME}: agents now serve "
                          f"{values.scheme}://<pod IP>:{values.port}{values.metrics_path}")
            _push(cluster, namespace, text)
    _run(body)


def _checked(config: str | None) -> str:
    """The file's text, after the same validation as `ig prometheus --check`."""
    from ..plugins import load_catalog

    path = config_path(config) if config is not None else None
    if config is None or path is None:
        raise ConfigError("--config takes @path/to/file.yaml")
    ConfigFollower(config, load_catalog(), ConfigStatus()).first()
    return path.read_text(encoding="utf-8")


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
        err.print(f"[yellow]No agent pods in namespace {namespace} yet: deploy them with kubectl gadget deploy -n "
                  f"{namespace}[/]")
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
