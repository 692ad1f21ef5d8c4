"""The same numbers on both paths for trace open (docs/config.md, "Where a metric is computed"):
configs drawn over open's kernel columns, two `ig prometheus` side by side over the same real opens
(successful and failed, with flags and modes, by open, openat and openat2, as several users),
every sample identical.

The opening process names itself with a command unique to the run, which every drawn metric selects.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fixtures.igrun import check
from tests.fixtures.kernel_paths import Grammar, assert_same_samples, drawn_config, start_both

USERS = (0, 1000, 65534)
# (path relative to the run's folder, flags, mode, syscall): failures by design: a missing file, an
# existing file with O_CREAT|O_EXCL, a file opened as a directory, files a user may not read or create,
# a path the kernel cannot read (BAD: a pointer to no memory; the row's path is empty).
BAD = "-"
OPENS = (
    ("ok", os.O_RDONLY, 0, "openat"),
    ("ok", os.O_WRONLY | os.O_APPEND, 0, "openat"),
    ("missing", os.O_RDONLY, 0, "openat"),
    ("new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640, "openat"),
    ("ok", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, "openat"),
    ("ok", os.O_RDONLY | os.O_DIRECTORY, 0, "openat"),
    ("secret", os.O_RDONLY, 0, "openat"),
    ("ok", os.O_RDONLY | os.O_NONBLOCK, 0, "openat2"),
    ("missing", os.O_RDONLY, 0, "openat2"),
    ("ok", os.O_RDONLY, 0, "open"),
    ("new", os.O_RDWR | os.O_CREAT, 0o644, "open"),
    (BAD, os.O_RDONLY, 0, "openat"),
)
# The opener: imports first (they open files), then its command name, then only the opens it is given.
OPENER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]
SYS_OPEN, SYS_OPENAT2 = 2, 437
with open("/proc/self/comm", "w") as f:
    f.write(sys.argv[1])
for spec in sys.argv[2:]:
    path, flags, mode, syscall = spec.split(":")
    flags, mode = int(flags), int(mode)
    path = ctypes.c_void_p(1) if path == "-" else path.encode()
    if syscall == "openat":
        fd = libc.openat(-100, path, flags, mode)
    elif syscall == "openat2":
        how = OpenHow(flags, mode, 0)
        fd = libc.syscall(SYS_OPENAT2, -100, path, ctypes.byref(how), ctypes.sizeof(how))
    else:
        fd = libc.syscall(SYS_OPEN, path, flags, mode)
    if fd >= 0:
        os.close(fd)
"""


@pytest.fixture(scope="module")
def folder():
    where = Path(tempfile.mkdtemp(prefix="ig-kpo-"))
    where.chmod(0o755)
    (where / "ok").write_text("readable\n")
    (where / "ok").chmod(0o644)
    (where / "secret").write_text("root only\n")
    (where / "secret").chmod(0o600)
    yield where
    shutil.rmtree(where)


def _grammar(comm: str, folder: Path) -> Grammar:
    paths = tuple(str(folder / name) for name in ("ok", "missing", "new", "secret")) + ("ok", '""', "x" * 300)
    return Grammar(
        gadget="open",
        anchor=f"comm:{comm}",
        ints={"uid": (-1, 0, 999, 1000, 65534, 70000), "gid": (0, 1000, 65534), "pid": (1, 4194305),
              "tid": (1, 4194305), "flagsRaw": (0, os.O_CREAT, os.O_WRONLY | os.O_APPEND, 0x80000),
              "modeRaw": (0, 0o600, 0o640, 0o644), "fd": (-1, 0, 3, 10), "err": (0, 2, 13, 17, 20),
              "retval": (-20, -13, -2, 0, 3)},
        strings={"path": paths, "syscall": ("open", "openat", "openat2", ""), "comm": (comm, "true")},
        labels=("uid", "gid", "comm", "syscall", "path", "flagsRaw", "modeRaw", "fd", "err", "retval"),
        fields=("uid", "flagsRaw", "modeRaw", "fd", "err", "retval"),
    )


def _open_as(uid: int, comm: str, folder: Path, opens) -> dict[str, int]:
    """Runs the opener as `uid`, half of the paths relative to the folder; returns opens per path."""
    specs, expected = [], {}
    for i, (name, flags, mode, syscall) in enumerate(opens):
        path = name if i % 2 or name == BAD else str(folder / name)
        specs.append(f"{path}:{flags}:{mode}:{syscall}")
        shown = "" if name == BAD else path
        expected[shown] = expected.get(shown, 0) + 1
    setpriv = shutil.which("setpriv")
    subprocess.run([setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c", OPENER,
                    comm, *specs], cwd=folder, check=True)
    return expected


@settings(max_examples=2, deadline=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_kernel_and_user_paths_expose_identical_samples(require_bpf, run_ig, folder, data):
    comm = "o" + uuid.uuid4().hex[:14]
    opens = OPENS if platform.machine() == "x86_64" else tuple(o for o in OPENS if o[3] != "open")
    config = drawn_config(data.draw, _grammar(comm, folder), 16, ("path",))
    kernel, user = start_both(run_ig, config, "--host")

    expected: dict[str, int] = {}
    for uid in data.draw(st.lists(st.sampled_from(USERS), min_size=1, max_size=3)):
        for path, count in _open_as(uid, comm, folder, data.draw(st.permutations(opens))).items():
            expected[path] = expected.get(path, 0) + count
    for path, count in expected.items():   # every open seen in user space; then both agree
        assert user.wait_for("m_fixed_total", count, path=path) == count, (path, user.text())
    assert_same_samples(kernel, user)
    (folder / "new").unlink(missing_ok=True)
    kernel.stop()
    user.stop()


def test_check_places_numbers_in_the_kernel_and_names_the_flags_column():
    """docs/config.md, "Using trace open": flagsRaw is known in the kernel, the flags' names are not."""
    result = check("""metrics_name: o
metrics:
  - {name: raw, type: counter, category: trace, gadget: open, selector: ["flagsRaw:0", "err:2"], labels: [path, syscall]}
  - {name: named, type: counter, category: trace, gadget: open, selector: ["flags:O_RDONLY"]}
""")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  raw: in the kernel (a BPF map of trace open)" in lines
    assert ('  named: in user space (trace open): selector "flags:O_RDONLY": column flags is not known in the '
            "gadget's eBPF program") in lines
