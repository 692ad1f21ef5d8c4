"""The pod watch against a local endpoint that speaks the API server's list and watch protocol.

A contract test, not a cluster (docs/config.md, Pod owners and labels): chunked JSON events,
BOOKMARK, a stream the server ends, one that breaks, 410 Gone, 403, paged lists, and the owner
reads (ReplicaSet -> Deployment, Job -> CronJob).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from igcore.containers.pods import PodDirectory
from igcore.containers.sources.kubeapi import KubeApi
from igcore.containers.sources import pod_watch
from igcore.containers.sources.pod_watch import PodWatch
from tests.fake_apiserver import FakeApiServer
from tests.fake_pods import FakePods
from tests.fixtures.waiting import wait_until

NODE = "node-a"
COLUMNS = ("k8s.owner.kind", "k8s.owner.name", "k8s.podLabels", "k8s.podLabels.app")


@pytest.fixture
def api():
    server = FakeApiServer()
    yield server
    server.close()


@pytest.fixture
def cluster(api):
    pods = FakePods(api, NODE)
    pods.owner("ReplicaSet", "shop", "web-7d9", ("Deployment", "web"))
    pods.owner("Job", "batch", "nightly-2901", ("CronJob", "nightly"))
    pods.add("shop", "web-7d9-a", {"app": "web", "team": "payments"}, ("ReplicaSet", "web-7d9"))
    pods.add("shop", "web-7d9-b", {"app": "web", "team": "payments"}, ("ReplicaSet", "web-7d9"))
    pods.add("batch", "nightly-2901-x", {"app": "nightly"}, ("Job", "nightly-2901"))
    pods.add("kube-system", "proxy-q", {"app": "proxy"}, ("DaemonSet", "proxy"))
    pods.add("default", "bare", {"app": "bare"})
    return pods


@pytest.fixture
def watching(api, cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(pod_watch, "BACKOFF_FIRST", 0.05)
    monkeypatch.setattr(pod_watch, "PAGE", 2)   # the five pods come in three pages
    collection = SimpleNamespace(pods=PodDirectory())   # what the watch needs of its container collection
    collection.pods.want(COLUMNS)
    watch = PodWatch(KubeApi(str(cluster.kubeconfig(tmp_path / "kubeconfig"))), NODE, watch_timeout=30)
    yield lambda: watch.start(collection) or watch
    watch.stop()


def test_lists_then_watches_this_node_with_owners_and_labels(watching, cluster, api):
    watching = watching()
    directory = watching.pods
    wait_until(lambda: directory.count() == 5, "the five pods of the list", 10)
    assert directory.columns("shop", "web-7d9-a") == {
        "k8s.owner.kind": "Deployment", "k8s.owner.name": "web",
        "k8s.podLabels": "app=web,team=payments", "k8s.podLabels.app": "web"}
    assert directory.columns("batch", "nightly-2901-x")["k8s.owner.name"] == "nightly"
    assert directory.columns("batch", "nightly-2901-x")["k8s.owner.kind"] == "CronJob"
    assert directory.columns("kube-system", "proxy-q")["k8s.owner.kind"] == "DaemonSet"
    assert directory.columns("default", "bare")["k8s.owner.kind"] == ""
    lists = cluster.lists()
    assert [r.query.get("continue") for r in lists] == [None, "2", "4"]
    assert all(r.query["fieldSelector"] == f"spec.nodeName={NODE}" for r in lists)
    # the ReplicaSet is read once for its two pods: owners are cached
    assert sum(r.path.endswith("/replicasets/web-7d9") for r in api.requests) == 1
    wait_until(lambda: cluster.watches(), "a watch", 10)
    first = cluster.watches()[0].query
    assert first["resourceVersion"] == "105"   # the list's
    assert first["allowWatchBookmarks"] == "true"
    # an event on the watch: a new pod, then a deletion
    cluster.add("shop", "web-7d9-c", {"app": "web"}, ("ReplicaSet", "web-7d9"))
    wait_until(lambda: directory.count() == 6, "the added pod", 10)
    assert directory.columns("shop", "web-7d9-c")["k8s.owner.name"] == "web"
    cluster.delete("shop", "web-7d9-a")
    wait_until(lambda: directory.count() == 5, "the deleted pod", 10)
    # a deleted pod still labels its containers' late rows for a while
    assert directory.columns("shop", "web-7d9-a")["k8s.owner.name"] == "web"


def test_resumes_from_bookmarks_and_dropped_streams_relists_on_410(watching, cluster):
    watching = watching()
    wait_until(lambda: cluster.watching == 1, "a watch open", 10)
    cluster.bookmark()
    bookmark = str(cluster.version)
    wait_until(lambda: watching._version == bookmark, "the bookmark's version", 10)
    cluster.drop_streams()
    wait_until(lambda: len(cluster.watches()) == 2, "a second watch after the broken stream", 10)
    assert cluster.watches()[1].query["resourceVersion"] == bookmark   # resumed, not listed again
    assert len(cluster.lists()) == 3
    assert watching.restarts["unreachable"] == 1
    # 410 as an ERROR event: the version is too old (changes happened while no watch was open)
    cluster.drop_streams()
    wait_until(lambda: len(cluster.watches()) == 3, "a third watch", 10)
    cluster.refusing = 503   # no watch is open while the pods change
    cluster.drop_streams()
    wait_until(lambda: watching.restarts["http_error"] >= 1, "a 503", 10)
    cluster.add("default", "late", {"app": "late"})
    cluster.compact()
    cluster.refusing = None
    wait_until(lambda: len(cluster.lists()) == 6, "a new list after 410 Gone", 10)
    assert watching.restarts["expired"] == 1
    wait_until(lambda: watching.pods.count() == 6, "the pod added while no watch was open", 10)
    # 410 as the watch's HTTP status: listed again too
    cluster.failures = [410]
    cluster.drop_streams()
    wait_until(lambda: len(cluster.lists()) == 9, "a new list after HTTP 410", 10)
    assert watching.restarts["expired"] == 2


def test_forbidden_backs_off_and_recovers(watching, cluster):
    cluster.failures = [403, 403]
    watching = watching()
    wait_until(lambda: watching.pods.count() == 5, "the pods once the API server allows the list", 10)
    assert watching.restarts["forbidden"] == 2
    assert watching.restarts["expired"] == 0
    assert watching.seconds_since_last_event() < 10


def test_a_config_with_other_label_keys_lists_the_pods_again(watching, cluster):
    """Only the label keys a config uses are held: a reload that uses another key lists the pods
    again, at the watch's next event (here a bookmark), and that is not a restart."""
    watching = watching()
    directory = watching.pods
    wait_until(lambda: directory.count() == 5 and cluster.watching == 1, "the list and a watch", 10)
    assert "k8s.podLabels.team" not in directory.columns("shop", "web-7d9-a")
    assert directory.want([*COLUMNS, "k8s.podLabels.team"])
    assert directory.columns("shop", "web-7d9-a")["k8s.podLabels.team"] == ""   # not held yet
    watching.relist()
    cluster.bookmark()
    wait_until(lambda: directory.columns("shop", "web-7d9-a")["k8s.podLabels.team"] == "payments",
               "the new key's value", 10)
    assert len(cluster.lists()) == 6   # the three pages again
    assert sum(watching.restarts.values()) == 0
