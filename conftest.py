"""Shared by the core's tests and every plugin's tests (pytest loads this rootdir conftest first)."""

import pytest

from tests.fixtures.requirements import require_bpf, require_docker  # noqa: F401  (re-exported fixtures)
from tests.fixtures.docker import docker, busybox_image  # noqa: F401
from tests.fixtures.igrun import run_ig  # noqa: F401
from tests.fixtures.prometheus import prometheus_server  # noqa: F401


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
