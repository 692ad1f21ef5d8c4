"""The runtime table (igcore/containers/runtimes.py) is the one place runtimes are named: the CLI's
options, the container sources and the merge precedence all follow an entry added to a table, and
the merge's precedence rules, as tables of cases (docs/architecture.md, "A new container runtime")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from igcore.cli_runtimes import with_runtime_options
from igcore.containers import Container, ContainerCollection, RuntimeOptions
from igcore.containers.merge import STATE, Probed, StateFacts, after_exit, chosen_pid, keeps_namespaces, merge
from igcore.containers.runc import RuncState
from igcore.containers.model import k8s_names, oci_name_and_image
from igcore.containers.runtimes import RUNTIMES, Annotations, Runtime, RuntimeTable, Sign
from igcore.containers.sources import StateDirSource, host_sources
from igcore.errors import ConfigError
from tests.fixtures.waiting import wait_until

IG = str(Path(sys.executable).with_name("ig"))
DOCKER = "docker"   # docker's Engine API source reports under its runtime's name


class ApiSource:
    """A runtime's own source, as the table builds it: says one thing of one container."""
    name = "fake-api"

    def __init__(self, runtime: Runtime, socket: str) -> None:
        self.runtime, self.socket = runtime.name, socket
        self.said: dict[str, dict] = {}

    def start(self, sink) -> None:
        for cid, facts in self.said.items():
            sink.report(self.runtime, cid, facts, running=True)

    def refresh(self) -> None:
        pass

    def runtimes_in_use(self) -> list[str]:
        return [self.runtime]

    def stop(self) -> None:
        pass


def table_with(*extra: Runtime) -> RuntimeTable:
    return RuntimeTable((*RUNTIMES.entries, *extra))


# -- everything follows the table ----------------------------------------------------------------
def test_a_new_entry_gets_its_cli_options():
    table = table_with(Runtime("youki", rank=1, socket="/run/youki.sock", option="youki"))
    got: list[RuntimeOptions] = []
    app = typer.Typer(rich_markup_mode=None)   # as ig's: plain click help

    @app.command()
    @with_runtime_options(table)
    def show(verbose: bool = False, runtime_options=None) -> None:
        got.append(runtime_options())

    runner = CliRunner()
    usage = " ".join(runner.invoke(app, ["--help"]).output.split())
    assert "--youki-socketpath" in usage and f"[default: {','.join(table.names)}]" in usage
    result = runner.invoke(app, ["--runtimes", "youki,docker", "--youki-socketpath", "/tmp/y.sock", "--verbose"])
    assert result.exit_code == 0, result.output
    assert got[0].runtimes == ("youki", "docker") and got[0].table is table
    assert got[0].socket(table["youki"]) == "/tmp/y.sock" and got[0].socket(table["docker"]) == "/run/docker.sock"
    refused = runner.invoke(app, ["--runtimes", "youki,nope"])
    assert isinstance(refused.exception, ConfigError)
    assert str(refused.exception) == f"--runtimes: unknown runtime 'nope' (choose from {', '.join(table.names)})"
    assert table.names[-1] == "youki"


@pytest.mark.parametrize("command", ["prometheus", "trace", "snapshot"])
def test_every_command_takes_the_tables_runtime_options(command):
    result = subprocess.run([IG, command, "--help"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "200"})
    usage = " ".join(result.stdout.split())
    assert result.returncode == 0 and f"[default: {','.join(RUNTIMES.names)}]" in usage
    for runtime in RUNTIMES.with_sockets():
        assert f"--{runtime.option}-socketpath <str>" in usage and f"[default: {runtime.socket}]" in usage


def test_an_unknown_runtime_is_one_line_and_exit_2():
    result = subprocess.run([IG, "snapshot", "process", "--runtimes", "docker,nope"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"Error: --runtimes: unknown runtime 'nope' (choose from {', '.join(RUNTIMES.names)})"]


def write_state(root: Path, cid: str, pid: int, annotations: dict[str, str]) -> None:
    (root / cid).mkdir(parents=True)
    labels = [f"{key}={value}" for key, value in annotations.items()]
    (root / cid / "state.json").write_text(json.dumps({"id": cid, "init_process_pid": pid,
                                                       "config": {"labels": labels}}))


def test_a_new_entry_gets_its_sources_and_its_rank_in_the_merge(tmp_path):
    """A runc-style runtime is read from its state root; one with an API gets its own source, at the
    socket the options name; the higher ranked names a container both describe."""
    root = tmp_path / "youki"
    table = table_with(Runtime("youki", rank=5, state_dirs=(str(root),), signs=(Sign.STATE_DIRS,)),
                       Runtime("fake-api", rank=4, socket="/run/fake.sock", option="fake-api", api_source=ApiSource))
    options = RuntimeOptions(runtimes=("youki", "fake-api"), sockets={"fake-api": str(tmp_path / "api.sock")},
                             table=table)
    sources = host_sources(options)
    api, state_dirs = sources[-1], sources[-2]
    assert isinstance(api, ApiSource) and (api.runtime, api.socket) == ("fake-api", str(tmp_path / "api.sock"))
    assert isinstance(state_dirs, StateDirSource)

    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        write_state(root, "c-1", sleeper.pid, {"nerdctl/name": "from-state"})
        api.said["c-1"] = {"name": "from-api", "image": "api:1"}
        collection = ContainerCollection([state_dirs, api], runtimes=table)
        collection.start()
        try:
            found = wait_until(lambda: (c := collection.get("c-1")) and c.pid and c, "the youki container", 10)
            assert (found.runtime, found.name, found.image, found.pid) == ("youki", "from-state", "api:1", sleeper.pid)
            assert state_dirs.runtimes_in_use() == ["youki"] and collection.skipped == []
        finally:
            collection.stop()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_runtime_without_any_of_its_signs_is_skipped(tmp_path):
    table = table_with(Runtime("youki", rank=1, state_dirs=(str(tmp_path / "none"),), socket=str(tmp_path / "y.sock"),
                               option="youki", signs=(Sign.SOCKET, Sign.STATE_DIRS, Sign.BINARY),
                               binary="ig-no-such-binary"))
    collection = ContainerCollection([StateDirSource(RuntimeOptions(runtimes=("youki",), table=table))],
                                     runtimes=table)
    collection.start()
    collection.stop()
    assert collection.skipped == [f"youki: not found ({tmp_path / 'y.sock'}, {tmp_path / 'none'}, "
                                  "the ig-no-such-binary binary); skipped"]


# -- the table's own answers ---------------------------------------------------------------------
CRIO_ANNOTATION = {"io.kubernetes.cri-o.ContainerType": "container"}


@pytest.mark.parametrize("root_runtime, annotations, runtime", [
    ("runc", {}, "runc"),
    ("runc", CRIO_ANNOTATION, "cri-o"),       # cri-o and plain runc share /run/runc
    ("cri-o", {}, "runc"),
    ("cri-o", CRIO_ANNOTATION, "cri-o"),
    ("containerd", CRIO_ANNOTATION, "containerd"),   # a root of its own: the annotations do not matter
    ("docker", {}, "docker"),
    ("elsewhere", {}, "elsewhere"),
])
def test_runtime_of_a_state(root_runtime, annotations, runtime):
    assert RUNTIMES.runtime_of(root_runtime, annotations) == runtime


def test_the_docker_source_reads_dockers_api_and_ranks_first():
    assert RUNTIMES.rank("docker") > max(RUNTIMES.rank(name) for name in RUNTIMES.names if name != "docker")
    assert [r.name for r in RUNTIMES.entries if r.api_source] == ["docker"]
    assert RUNTIMES.rank("unknown") < min(r.rank for r in RUNTIMES.entries)


YOUKI_KEYS = Annotations("org.youki/ns", "org.youki/pod", "org.youki/container", image="org.youki/image",
                         name="org.youki/name", sandbox=("org.youki/kind", "pause"))


def test_a_new_entrys_annotations_name_its_containers():
    table = table_with(Runtime("youki", rank=1, annotations=YOUKI_KEYS))
    annotations = {"org.youki/ns": "shop", "org.youki/pod": "web-1", "org.youki/container": "web",
                   "org.youki/image": "y:1", "org.youki/name": "yk", "org.youki/kind": "pause"}
    found = merge("c1", {STATE: state("youki", **annotations)}, None, Probed(), table=table)
    assert (found.name, found.image, found.k8s_namespace, found.k8s_pod, found.k8s_container, found.sandbox) == (
        "yk", "y:1", "shop", "web-1", "web", True)
    unknown = merge("c1", {STATE: state("youki", **annotations)}, None, Probed())
    assert (unknown.name, unknown.image, unknown.k8s_pod, unknown.sandbox) == ("c1", "", "", False)


CRI = {"io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-name": "web-1",
       "io.kubernetes.cri.container-name": "web"}
POD = {"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": "web-1", "io.kubernetes.container.name": "web"}


@pytest.mark.parametrize("annotations, names", [
    (CRI, ("shop", "web-1", "web")),                                   # containerd's CRI
    (POD, ("shop", "web-1", "web")),                                   # cri-o, cri-dockerd's labels
    ({"io.kubernetes.container.name": "web"}, ("", "", "web")),
    ({"io.kubernetes.cri.sandbox-name": "web-1"}, ("", "web-1", "")),
    ({"io.kubernetes.cri.sandbox-namespace": "shop"}, ("", "", "")),   # a namespace alone names nothing
    ({}, ("", "", "")),
])
def test_k8s_names(annotations, names):
    assert k8s_names(annotations) == names


@pytest.mark.parametrize("annotations, name_and_image", [
    ({"nerdctl/name": "web", "io.kubernetes.cri.image-name": "shop/web:1"}, ("web", "shop/web:1")),
    ({**CRI, "nerdctl/name": "nerd"}, ("nerd", "")),                   # nerdctl's name before Kubernetes'
    (CRI, ("web", "")),
    ({"io.kubernetes.cri-o.ImageName": "shop/web:2"}, ("", "shop/web:2")),
    ({"nerdctl/name": ""}, ("", "")),
])
def test_oci_name_and_image(annotations, name_and_image):
    assert oci_name_and_image(annotations) == name_and_image


# -- merge.py's pure functions -------------------------------------------------------------------
def state(runtime: str = "containerd", pid: int = 7, **annotations: str) -> StateFacts:
    return StateFacts(runtime, RuncState("c1", pid, dict(annotations), "", "/run/x"))


def api(name: str = "", pid: int = 0, image: str = "", **more) -> dict:
    return {"name": name, "image": image, "pid": pid, **more}


YOUKI = table_with(Runtime("youki", rank=9))
NAMED = {"nerdctl/name": "st-name", "io.kubernetes.cri.image-name": "st:1"}
K8S = {"io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-name": "web-1",
       "io.kubernetes.cri.container-name": "web"}
OLD = Container(id="c1", name="old-name", runtime="runc", image="old:1", pid=7, cgroup_id=5, mntns=1, netns=2)


@pytest.mark.parametrize("sightings, old, table, expected", [
    # (runtime, name, image): the best-ranked runtime that spoke, each field from the best that knows it
    ({STATE: state("runc", **NAMED)}, None, RUNTIMES, ("runc", "st-name", "st:1")),
    ({DOCKER: api("dk", image="dk:1"), STATE: state(**NAMED)}, None, RUNTIMES, ("docker", "dk", "dk:1")),
    ({DOCKER: api("dk"), STATE: state(**NAMED)}, None, RUNTIMES, ("docker", "dk", "st:1")),
    ({DOCKER: api(), STATE: state("docker")}, None, RUNTIMES, ("docker", "c1", "")),
    ({DOCKER: api("dk", image="dk:1")}, OLD, RUNTIMES, ("docker", "dk", "dk:1")),
    ({STATE: state()}, OLD, RUNTIMES, ("containerd", "old-name", "old:1")),      # once known, kept
    # a runtime the table ranks above docker names the container
    ({DOCKER: api("dk", image="dk:1"), STATE: state("youki", **NAMED)}, None, YOUKI, ("youki", "st-name", "st:1")),
    ({DOCKER: api("dk", image="dk:1"), STATE: state("youki", **NAMED)}, None, RUNTIMES, ("docker", "dk", "dk:1")),
    ({"youki": api("yk"), STATE: state("docker", **NAMED)}, None, YOUKI, ("youki", "yk", "st:1")),
])
def test_merge_precedence(sightings, old, table, expected):
    found = merge("c1", sightings, old, Probed(), table=table)
    assert (found.runtime, found.name, found.image) == expected


@pytest.mark.parametrize("docker_k8s, annotations, expected", [
    ({}, K8S, ("shop", "web-1", "web")),
    ({"k8s_namespace": "ns", "k8s_pod": "pod"}, K8S, ("ns", "pod", "web")),   # docker's, then the state's
    ({"k8s_container": "dc"}, {}, ("", "", "dc")),
])
def test_merge_kubernetes_names_field_by_field(docker_k8s, annotations, expected):
    found = merge("c1", {DOCKER: api("dk", **docker_k8s), STATE: state(**annotations)}, None, Probed())
    assert (found.k8s_namespace, found.k8s_pod, found.k8s_container) == expected


@pytest.mark.parametrize("sightings, sandbox", [
    ({STATE: state(**{"io.kubernetes.cri.container-type": "sandbox"})}, True),
    ({STATE: state(**{"io.kubernetes.cri-o.ContainerType": "sandbox"})}, True),
    ({DOCKER: api(sandbox=True), STATE: state()}, True),
    ({DOCKER: api(sandbox=False), STATE: state(**{"io.kubernetes.cri.container-type": "sandbox"})}, True),
    ({DOCKER: api(), STATE: state()}, False),
])
def test_merge_sandbox_if_any_source_says_so(sightings, sandbox):
    assert merge("c1", sightings, None, Probed()).sandbox is sandbox


@pytest.mark.parametrize("sightings, old, pid", [
    ({STATE: state(pid=7), DOCKER: api(pid=9)}, None, 7),   # a state is rewritten at each start
    ({STATE: state(pid=0), DOCKER: api(pid=9)}, None, 9),
    ({DOCKER: api(pid=9)}, OLD, 9),
    ({DOCKER: api(pid=0)}, OLD, 7),                          # nothing new: the old pid
    ({DOCKER: api()}, None, 0),
    ({}, None, 0),
])
def test_chosen_pid(sightings, old, pid):
    assert chosen_pid(sightings, old) == pid


@pytest.mark.parametrize("old, pid, kept", [
    (OLD, 7, True),
    (OLD, 8, False),                                 # a new init process: read its namespaces
    (Container(id="c1", name="", runtime="", pid=7), 7, False),   # never read: read them now
    (None, 7, False),
])
def test_keeps_namespaces(old, pid, kept):
    assert keeps_namespaces(old, pid) is kept


@pytest.mark.parametrize("probed, old, expected", [
    (Probed(cgroup_id=50, mntns=10, netns=20), None, (50, 10, 20)),
    (Probed(cgroup_id=50, mntns=10, netns=20), OLD, (50, 1, 2)),   # same init: the namespaces read before
    (Probed(), OLD, (5, 1, 2)),
])
def test_merge_takes_what_the_kernel_said_once_per_init(probed, old, expected):
    found = merge("c1", {STATE: state(pid=7)}, old, probed)
    assert (found.cgroup_id, found.mntns, found.netns) == expected


@pytest.mark.parametrize("sightings, kept", [
    ({STATE: state(), DOCKER: api("dk", pid=9)}, {DOCKER: api("dk", pid=0)}),
    ({STATE: state()}, {}),
    ({"youki": api("yk", pid=3, image="y:1")}, {"youki": api("yk", pid=0, image="y:1")}),
])
def test_after_exit(sightings, kept):
    assert after_exit(sightings) == kept


def test_config_md_names_each_runtimes_socket_option_and_default():
    containers = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text().split("## Containers")[1]
    text = " ".join(containers.split("\n## ")[0].split())
    for runtime in RUNTIMES.with_sockets():
        assert f"`--{runtime.option}-socketpath`" in text and f"`{runtime.socket}`" in text, runtime.name
    for runtime in RUNTIMES.entries:
        assert all(f"`{directory}`" in text for directory in runtime.state_dirs), runtime.name
