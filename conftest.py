"""Shared by the core's tests and every plugin's tests (pytest loads this rootdir conftest first)."""

pytest_plugins = [
    "tests.fixtures.requirements",   # require_bpf, require_docker
    "tests.fixtures.docker",         # docker, busybox_image (one dockerd per session)
    "tests.fixtures.igrun",          # run_ig
    "tests.fixtures.prometheus",     # prometheus_server
    "tests.fixtures.netns",          # netns, make_netns
    "tests.fixtures.trace_rows",     # trace_rows: a trace gadget's rows, the gadget run in-process
    "tests.fixtures.ig_trace",       # live_trace: the rows a real `ig trace` process prints
    "tests.fixtures.runc",           # busybox_rootfs: files for runc bundles
    "tests.fixtures.stalled_file",   # stalled_file: a file whose reads never return
    "tests.fixtures.misbehaving",    # bad: the misbehaving gadgets and their inputs
    "tests.synthetic",               # synth: the test-only synth gadgets enabled for this test
]
