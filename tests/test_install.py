"""`make install`, `make uninstall` and `make install-service` (README, "Install" and "Running as a
service"), run for real into temporary directories: BINDIR, UNITDIR and CONFDIR stand for
/usr/local/bin, /etc/systemd/system and /etc/ig."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from igcore.kubectl.manifests import CAPABILITIES
from tests.fixtures.igrun import start_ig
from tests.fixtures.requirements import missing, need_binary

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PROGRAMS = ("ig", "kubectl-gadget")
UNIT = ROOT / "deploy" / "ig.service"


@pytest.fixture(autouse=True)
def as_root():
    if os.geteuid() != 0:
        missing("make install runs the set-up, which needs root")


def make(target: str, tmp_path: Path, check: bool = True, bindir: str = "bin") -> subprocess.CompletedProcess:
    places = {"BINDIR": tmp_path / bindir, "UNITDIR": tmp_path / "units", "CONFDIR": tmp_path / "etc-ig"}
    return subprocess.run(["make", "-s", "-C", str(ROOT), target, f"VENV={VENV_BIN.parent}",
                           *(f"{k}={v}" for k, v in places.items())],
                          capture_output=True, text=True, timeout=600, check=check)


def own_lines(stderr: str) -> list[str]:
    """What the install script said on stderr, without make's own "make: *** ..." line."""
    return [line for line in stderr.splitlines() if not line.startswith("make")]


def unit_settings(text: str) -> dict[str, str]:
    """Key=value lines of a unit file (the last one wins, as for the keys this test reads)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_install_links_both_programs_to_the_venv_and_is_idempotent(tmp_path):
    for _ in range(2):
        make("install", tmp_path)
        for name in PROGRAMS:
            link = tmp_path / "bin" / name
            assert link.is_symlink() and Path(os.readlink(link)) == VENV_BIN / name
    found = subprocess.run(["ig", "--help"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PATH": str(tmp_path / "bin")})
    assert found.returncode == 0 and "prometheus" in found.stdout


@pytest.mark.parametrize("foreign", ["file", "link"])
def test_install_refuses_a_name_that_is_not_its_own_link_in_one_line(tmp_path, foreign):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    taken = bindir / "kubectl-gadget"
    if foreign == "file":
        taken.write_text("#!/bin/sh\necho someone else's\n")
    else:
        taken.symlink_to("/opt/other-clone/.venv/bin/kubectl-gadget")
    before = os.readlink(taken) if taken.is_symlink() else taken.read_text()
    failed = make("install", tmp_path, check=False)
    assert failed.returncode != 0
    assert own_lines(failed.stderr) == [
        f"install: {taken} exists and is not a link to {VENV_BIN / 'kubectl-gadget'}: remove it, then run make install again"]
    assert (os.readlink(taken) if taken.is_symlink() else taken.read_text()) == before
    assert not (bindir / "ig").exists(), "nothing is linked when one name is taken"


def test_uninstall_removes_its_own_links_only(tmp_path):
    make("install", tmp_path)
    bindir = tmp_path / "bin"
    (bindir / "kubectl-gadget").unlink()
    (bindir / "kubectl-gadget").write_text("someone else's\n")
    (bindir / "other").write_text("unrelated\n")
    out = make("uninstall", tmp_path).stdout
    assert sorted(p.name for p in bindir.iterdir()) == ["kubectl-gadget", "other"]
    assert (bindir / "kubectl-gadget").read_text() == "someone else's\n"
    assert f"left {bindir / 'kubectl-gadget'}" in out
    make("uninstall", tmp_path)   # nothing of its own left: still succeeds


def test_unit_runs_as_root_with_the_agents_capabilities_only():
    settings = unit_settings(UNIT.read_text())
    assert settings["User"] == "root"
    assert settings["CapabilityBoundingSet"].split() == [f"CAP_{name}" for name in CAPABILITIES]
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["Restart"] == "on-failure"


def test_install_service_writes_a_unit_systemd_accepts_whose_command_passes_check(tmp_path):
    out = make("install-service", tmp_path).stdout
    unit = tmp_path / "units" / "ig.service"
    config = tmp_path / "etc-ig" / "config.yaml"
    assert config.read_text() == (ROOT / "igcore" / "data" / "default.yaml").read_text()
    if not Path("/run/systemd/system").is_dir():
        assert "systemd is not running on this machine: no daemon-reload" in out

    command = shlex.split(unit_settings(unit.read_text())["ExecStart"])
    assert command[0] == str(tmp_path / "bin" / "ig")
    assert command[1:] == ["prometheus", "--config", f"@{config}", "--watch"]
    checked = subprocess.run([*command, "--check"], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    verified = subprocess.run([need_binary("systemd-analyze"), "verify", str(unit)],
                              capture_output=True, text=True, timeout=120)
    assert (verified.returncode, verified.stderr) == (0, "")   # unknown keys are only warnings: none


def test_install_service_keeps_an_existing_config_and_refuses_one_that_fails_check(tmp_path):
    config = tmp_path / "etc-ig" / "config.yaml"
    config.parent.mkdir()
    config.write_text("metrics_name: mine\nmetrics: []\n")
    assert "kept" in make("install-service", tmp_path).stdout
    assert config.read_text() == "metrics_name: mine\nmetrics: []\n"

    config.write_text("metrics_name: mine\nmetrics: [{name: x, type: counter, category: trace, gadget: nope}]\n")
    failed = make("install-service", tmp_path, check=False)
    assert failed.returncode != 0
    assert f"install: {config} does not pass ig prometheus --check: the service would not start" in failed.stderr


@pytest.mark.parametrize("bindir", ["my bin", "bin%n", "bin\"q"])
def test_install_service_refuses_a_path_systemd_would_read_otherwise_in_one_line(tmp_path, bindir):
    failed = make("install-service", tmp_path, check=False, bindir=bindir)
    assert failed.returncode != 0
    assert own_lines(failed.stderr) == [
        f"install: BINDIR={tmp_path / bindir}: use an absolute path of letters, digits and ._/+-"]
    assert not (tmp_path / "units").exists()


def readyz(ig) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{ig.address}/readyz", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# What systemd does for the unit's file system settings, done by hand (this machine need not boot
# with systemd): every mount read-only but /proc and /dev, a private /tmp. The unit's settings
# that this stands for:
EMULATED = {"ProtectSystem": "strict", "ProtectHome": "read-only", "ProtectKernelTunables": "yes",
            "ProtectControlGroups": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes"}
def read_only_but_tmp(keep: list[Path]) -> str:
    """The mount namespace of the unit: every mount read-only but /proc and /dev, a private /tmp.
    The places in `keep` (this clone, its venv) that lie under /tmp are bound back at their paths,
    read-only: a test run from a clone there still runs ig (the unit itself cannot: README)."""
    under_tmp = [p for p in keep if p.is_relative_to("/tmp") and not any(p != q and p.is_relative_to(q) for q in keep)]
    hold = "".join(f"mkdir /mnt/k{i}; mount -n --bind {shlex.quote(str(p))} /mnt/k{i}\n" for i, p in enumerate(under_tmp))
    back = "".join(f"mkdir -p {shlex.quote(str(p))}; mount -n --move /mnt/k{i} {shlex.quote(str(p))}\n"
                   for i, p in enumerate(under_tmp))
    return ("mount --make-rprivate /\n"
            + (f"mount -n -t tmpfs tmpfs /mnt\n{hold}" if under_tmp else "")
            + r"""awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
  case $m in /proc|/proc/*|/dev|/dev/*) continue ;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount -t tmpfs tmpfs /tmp
""" + back + 'exec "$@"\n')


def test_every_gadget_of_the_built_in_config_runs_as_the_unit_would_run_it(require_bpf, tmp_path):
    """Root limited to the unit's bounding set, without new privileges, on a read-only file system
    with a private /tmp: bcc still compiles and attaches every default gadget."""
    settings = unit_settings(UNIT.read_text())
    assert {key: settings.get(key) for key in EMULATED} == EMULATED
    caps = settings["CapabilityBoundingSet"].split()
    bounding = ",".join(["-all", *(f"+{cap.removeprefix('CAP_').lower()}" for cap in caps)])
    wrapper = (need_binary("unshare"), "--mount", "sh", "-ec", read_only_but_tmp([ROOT, VENV_BIN.parent]), "sandbox",
               need_binary("setpriv"), "--no-new-privs", f"--bounding-set={bounding}")
    ig = start_ig(None, "--host", log_dir=tmp_path, wrapper=wrapper)
    try:
        deadline = time.monotonic() + 120   # every gadget compiles first; slow on a busy machine
        while (answer := readyz(ig))[0] != 200 and time.monotonic() < deadline and ig.proc.poll() is None:
            time.sleep(0.2)
        assert answer[0] == 200, f"{answer}\n{ig.output()}"
    finally:
        ig.stop()
