"""A ConfigMap volume updated exactly as the kubelet's atomic writer does it.

k8s.io/kubernetes/pkg/volume/util/atomic_writer.go: write the payload into a new timestamped
directory `..<timestamp>`, point the symlink `..data_tmp` at it, rename `..data_tmp` over `..data`
(the one atomic step), create the user-visible `key -> ..data/key` links that are missing, remove
the links of keys that are gone, then remove the previous timestamped directory.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from pathlib import Path

_serial = itertools.count()


class ConfigMapVolume:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def write(self, payload: dict[str, str]) -> None:
        old = os.readlink(self.root / "..data") if (self.root / "..data").is_symlink() else None
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime()) + f".{os.getpid()}{next(_serial):04d}"
        (self.root / stamp).mkdir()
        for key, text in payload.items():
            (self.root / stamp / key).write_text(text)
        os.symlink(stamp, self.root / "..data_tmp")
        os.rename(self.root / "..data_tmp", self.root / "..data")
        for key in payload:
            if not (self.root / key).is_symlink():
                os.symlink(f"..data/{key}", self.root / key)
        for entry in self.root.iterdir():
            if not entry.name.startswith("..") and entry.name not in payload:
                entry.unlink()
        if old is not None:
            shutil.rmtree(self.root / old)
