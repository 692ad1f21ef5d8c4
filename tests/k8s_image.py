"""Build the agent's image from the real Dockerfile without an image registry, and run it as its pod spec says.

The Debian base is made locally (deploy/debian-base.sh: debootstrap from this machine's apt
sources, docker import). pip in the build reads wheels made here on the host (this machine reaches
PyPI only through a proxy whose certificate the image does not trust), then builds ig and every
plugins/*/ distribution from their sources in the image, as a release build would.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from pathlib import Path

from tests.fixtures.requirements import missing

ROOT = Path(__file__).resolve().parent.parent
BASE = "ig-test-debian-minbase:bookworm"  # cached across runs: debootstrap takes about two minutes
# docker 20.10 knows neither BPF nor PERFMON, and SYS_RESOURCE is outside this VM's bounding set:
# those are left out here; SYS_ADMIN covers bpf() and perf events.
CAPS_THIS_MACHINE_ALLOWS = {"SYS_ADMIN", "NET_ADMIN", "NET_RAW", "SYS_PTRACE", "IPC_LOCK", "SYSLOG"}


def _run(*cmd: str, timeout: float = 1200) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def ensure_base() -> str:
    if subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode != 0:
        if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
            missing("debootstrap is not installed (tools/setup.sh installs it)")
        _run(str(ROOT / "deploy" / "debian-base.sh"), BASE)
    return BASE


def build_context(ctx: Path) -> Path:
    """What the Dockerfile copies, plus wheels of every dependency in deploy/wheels."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "tests", ".venv")
    for name in ("Dockerfile", "pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy2(ROOT / name, ctx / name)
    for name in ("igcore", "plugins", "deploy"):
        shutil.copytree(ROOT / name, ctx / name, ignore=ignore)
    wheels = ctx / "deploy" / "wheels"
    plugins = sorted(glob.glob(str(ROOT / "plugins" / "*" / "")))
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), "-c", str(ROOT / "constraints.txt"),
         str(ROOT), *plugins)
    _run(sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheels), "setuptools>=68", "wheel")
    return ctx


def build_image(ctx: Path, tag: str) -> str:
    _run("docker", "build", "--network", "host", "--build-arg", f"BASE={ensure_base()}", "--build-arg", "PIP_OFFLINE=1",
         "-t", tag, str(build_context(ctx)))
    return tag


def image_size_mb(tag: str) -> float:
    return int(_run("docker", "image", "inspect", "-f", "{{.Size}}", tag).strip()) / 1e6


def docker_run_options(pod_spec: dict, config_dir: Path, node_name: str) -> tuple[list[str], list[str]]:
    """(docker run options, arguments) for the pod spec's one container, mapped field by field."""
    (container,) = pod_spec["containers"]
    opts = ["--network", "host"]  # the test scrapes it on loopback; a pod has its own IP instead
    if pod_spec.get("hostPID"):
        opts += ["--pid", "host"]
    security = container.get("securityContext", {})
    for cap in security.get("capabilities", {}).get("drop", []):
        opts += ["--cap-drop", cap]
    for cap in security.get("capabilities", {}).get("add", []):
        if cap in CAPS_THIS_MACHINE_ALLOWS:
            opts += ["--cap-add", cap]
    if security.get("readOnlyRootFilesystem"):
        opts += ["--read-only"]
    if security.get("seccompProfile", {}).get("type") == "Unconfined":
        opts += ["--security-opt", "seccomp=unconfined"]
    opts += ["--security-opt", "apparmor=unconfined"]
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        opts += ["--memory", limits["memory"].replace("Gi", "g").replace("Mi", "m")]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:  # the kubelet's emptyDir is a fresh writable directory: a tmpfs here
            size = volume["emptyDir"].get("sizeLimit", "64Mi").replace("Gi", "g").replace("Mi", "m")
            opts += ["--tmpfs", f"{mount['mountPath']}:rw,size={size}"]
            continue
        source = volume["hostPath"]["path"] if "hostPath" in volume else str(config_dir)
        assert "hostPath" in volume or "configMap" in volume, volume
        opts += ["-v", f"{source}:{mount['mountPath']}{':ro' if mount.get('readOnly') else ''}"]
    for env in container.get("env", []):
        if env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            opts += ["-e", f"{env['name']}={node_name}"]
        elif "value" in env:
            opts += ["-e", f"{env['name']}={env['value']}"]
    return opts, list(container["args"])
