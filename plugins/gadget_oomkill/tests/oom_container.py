"""Causing an OOM kill on purpose: a container with a small memory limit and no swap, where a `dd`
reads a block larger than the limit (its buffer is touched page by page until the kernel kills it)."""

from __future__ import annotations

import uuid

IMAGE = "ig-test-busybox:latest"
LIMIT = "32m"
# busybox picks the applet by argv[0]: a link named dd makes the victim's comm "dd".
HOG = "busybox ln -s /bin/busybox /tmp/dd; /tmp/dd if=/dev/zero of=/dev/null bs=128M count=1"


def run_oom(docker, prefix: str = "ig-oom") -> str:
    """Runs one container whose dd is OOM-killed; returns its name once it has exited (so has the victim)."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    # --memory-swap equal to --memory: no swap, so the limit is reached rather than swapped around.
    docker.started.append(name)
    result = docker.cli("run", "--name", name, "--network", "none", "--memory", LIMIT, "--memory-swap", LIMIT, IMAGE,
                        "sh", "-c", HOG, check=False)
    assert result.returncode == 137, f"expected the OOM killer's SIGKILL, got {result.returncode}: {result.stderr}"
    return name
