"""Shared by the core's tests and every plugin's tests (pytest loads this rootdir conftest first)."""

pytest_plugins = [
    "tests.fixtures.requirements",   # require_bpf, require_docker
    "tests.fixtures.docker",         # docker, busybox_image (one dockerd per session)
    "tests.fixtures.igrun",          # run_ig
    "tests.fixtures.prometheus",     # prometheus_server
    "tests.fixtures.netns",          # netns, make_netns
    "tests.fixtures.trace_rows",     # trace_rows, live_trace: a trace gadget's rows
]
