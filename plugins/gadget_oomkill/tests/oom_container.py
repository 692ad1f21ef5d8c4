"""Causing OOM kills on purpose: a container with a small memory limit and no swap, where a `dd`
reads a block larger than the limit (its buffer is touched page by page until the kernel kills it)."""

from __future__ import annotations

import uuid

IMAGE = "ig-test-busybox:latest"
LIMIT = "32m"
# busybox picks the applet by argv[0]: a link named dd makes the victim's comm "dd".
LINK_DD = "busybox ln -s /bin/busybox /tmp/dd; "
HOG = LINK_DD + "/tmp/dd if=/dev/zero of=/dev/null bs=128M count=1"
# Victim and trigger apart, in a 48m container: dd reads 30 MB (touching them) and blocks writing
# them to a pipe nobody drains; once its first byte arrives, a shell (comm "sh") doubles a string
# until the limit. The OOM killer, run by the shell's allocation, picks the bigger dd; the shell
# goes on doubling and is the second victim, of its own allocation.
HOLDER_AND_GROWER = (LINK_DD + "/tmp/dd if=/dev/zero bs=30M count=2 | "
                     "{ read -n 1 c; x=0123456789abcdef; while :; do x=$x$x; done; }")


def run_oom(docker, prefix: str = "ig-oom", script: str = HOG, limit: str = LIMIT) -> str:
    """Runs one container whose processes the OOM killer ends; returns its name once it has exited (so
    have the victims)."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    # --memory-swap equal to --memory: no swap, so the limit is reached rather than swapped around.
    docker.started.append(name)
    result = docker.cli("run", "--name", name, "--network", "none", "--memory", limit, "--memory-swap", limit, IMAGE,
                        "sh", "-c", script, check=False)
    assert result.returncode == 137, f"expected the OOM killer's SIGKILL, got {result.returncode}: {result.stderr}"
    return name
