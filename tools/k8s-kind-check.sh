#!/usr/bin/env bash
# The guide's "On Kubernetes" section end to end on a real kind cluster. CI does not run it (its
# machines have no API server); run it by hand on a machine with docker, kind and kubectl:
#   tools/k8s-kind-check.sh            (KEEP=1 keeps the cluster afterwards)
# It was NOT run by this project's tests: each step is checked by the tests only up to the edge
# named in docs/guide.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${CLUSTER:-ig-check}
IG=${IG:-.venv/bin}
export PATH=$PWD/$IG:$PATH   # kubectl finds kubectl-gadget here

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() {  # wait_for DESCRIPTION TIMEOUT COMMAND...: until the command prints a non-empty line
  local what=$1 timeout=$2; shift 2
  for _ in $(seq 1 "$timeout"); do
    out=$("$@" 2>/dev/null || true)
    [ -n "$out" ] && { echo "$what: $out"; return 0; }
    sleep 1
  done
  echo "timed out waiting for $what" >&2; return 1
}
query() {  # PromQL through the port-forward; prints the first value
  curl -s http://127.0.0.1:9090/api/v1/query --data-urlencode "query=$1" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}

step "cluster and image"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER"
kubectl config use-context "kind-$CLUSTER"
IMAGE=ig:$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)   # the tag the manifests name
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "deploy the agents"
kubectl plugin list | grep kubectl-gadget
kubectl gadget deploy
kubectl -n gadget rollout status daemonset/ig --timeout=300s

step "an existing namespace is refused (exit 2), used unchanged when told, and kept by undeploy"
kubectl create namespace ig-check-existing --dry-run=client -o yaml | kubectl apply -f -
kubectl label --overwrite namespace ig-check-existing pod-security.kubernetes.io/enforce=baseline
if kubectl gadget deploy -n ig-check-existing; then echo "expected exit 2" >&2; exit 1; fi
kubectl gadget deploy -n ig-check-existing --use-existing-namespace
[ "$(kubectl get namespace ig-check-existing -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}')" = baseline ]
kubectl gadget undeploy -n ig-check-existing
kubectl get namespace ig-check-existing
kubectl delete namespace ig-check-existing

step "Prometheus"
kubectl apply -f docs/examples/prometheus.yaml
kubectl -n monitoring rollout status deployment/prometheus --timeout=300s
kubectl -n monitoring port-forward deploy/prometheus 9090 >/dev/null &
trap 'kill $! 2>/dev/null || true' EXIT
wait_for "agent target up" 120 query 'up{kubernetes_namespace="gadget"} == 1'

step "a bad config is refused locally (exit 2)"
printf 'metrics_name: x\nmetrics: [{name: y}]\n' > /tmp/ig-bad.yaml
if kubectl gadget prometheus --config @/tmp/ig-bad.yaml; then echo "expected exit 2" >&2; exit 1; fi

step "push the guide's config; the busybox pod's loop"
kubectl gadget prometheus --config @examples/executed_processes.yaml
sha=$(sha256sum examples/executed_processes.yaml | cut -d' ' -f1)
wait_for "config in force" 180 query "ig_config_info{sha256=\"$sha\"}"
kubectl run busybox --image busybox --restart Never -- sh -c 'for i in $(seq 1 100); do cat /dev/null; done'
wait_for "cat count" 120 query 'executed_processes_total{k8s_pod="busybox",comm="cat"} == 100'

step "change the config: cat only"
kubectl gadget prometheus --config @examples/executed_cat.yaml
sha=$(sha256sum examples/executed_cat.yaml | cut -d' ' -f1)
wait_for "new config in force" 180 query "ig_config_info{sha256=\"$sha\"}"
kubectl delete pod busybox --wait
kubectl run busybox --image busybox --restart Never -- sh -c 'for i in $(seq 1 100); do cat /dev/null; done'
wait_for "cat-only counter" 120 query 'executed_processes_total{k8s_pod="busybox",comm=""} == 100'
kubectl gadget prometheus --show

step "metrics by workload: a Deployment's series across a rollout"
kubectl gadget prometheus --config @examples/executed_by_workload.yaml
sha=$(sha256sum examples/executed_by_workload.yaml | cut -d' ' -f1)
wait_for "workload config in force" 180 query "ig_config_info{sha256=\"$sha\"}"
kubectl create deployment web --image busybox --replicas 2 -- sh -c 'while true; do cat /dev/null; sleep 10; done'
wait_for "count by owner" 180 query 'executed_by_workload_total{k8s_owner_kind="Deployment",k8s_owner_name="web"} > 0'
kubectl patch deployment web -p '{"spec":{"template":{"metadata":{"labels":{"team":"payments"}}}}}'
kubectl rollout status deployment/web --timeout=300s
wait_for "count by pod label" 180 query 'executed_by_app_total{k8s_podLabels_app="web"} > 0'
wait_for "one series for the Deployment" 60 query 'count(executed_by_workload_total{k8s_owner_name="web"}) == 1'
kubectl delete deployment web --wait

step "another endpoint, nothing else edited"
kubectl gadget prometheus --config @examples/executed_cat.yaml --metrics-listen-address 0.0.0.0:9464 --metrics-path /ig/metrics
kubectl -n gadget rollout status daemonset/ig --timeout=300s
wait_for "target on the new port" 180 query 'up{kubernetes_namespace="gadget",instance=~".*:9464"} == 1'

step "stop publishing, remove"
kubectl gadget prometheus --delete
wait_for "no config" 180 query 'absent(ig_config_info)'
kubectl delete pod busybox --wait
kubectl gadget undeploy
kubectl delete -f docs/examples/prometheus.yaml
[ "${KEEP:-0}" = 1 ] || kind delete cluster --name "$CLUSTER"
echo "all steps passed"
