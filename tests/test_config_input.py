"""Hostile config input is bounded and every failure is one line (docs/config.md, "Errors"): size, file type,
nesting, huge numbers, long values, reserved names. The CLI and reload paths are in
tests/test_config_reload.py."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from igcore.config import MAX_CONFIG_BYTES, bind_config, load_config
from igcore.errors import ConfigError
from igcore.selectors import RULES
from tests.fixtures.config_catalog import CATALOG, counter, histogram, problem, text_of


def failing(source: str) -> str:
    """Load `source` in a thread with a deadline: a read that blocks is a failure, not a hung run."""
    result: dict = {}

    def run() -> None:
        try:
            load_config(source, CATALOG)
            result["message"] = None
        except ConfigError as exc:
            result["message"] = str(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), f"loading {source[:80]!r} did not return within 30 s"
    message = result["message"]
    assert message is not None and "\n" not in message, message
    return message


# --- size and file type ------------------------------------------------------------------------


def test_file_of_exactly_the_limit_loads(tmp_path):
    path = tmp_path / "big.yaml"
    body = text_of(counter())
    path.write_text(body + "#" * (MAX_CONFIG_BYTES - len(body) - 1) + "\n")
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert len(load_config(f"@{path}", CATALOG).metrics) == 1


def test_file_over_the_limit_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(text_of(counter()) + "#" * MAX_CONFIG_BYTES + "\n")
    assert failing(f"@{path}") == f"{path}: the config is 1.0 MiB; the limit is 1 MiB (as for a Kubernetes ConfigMap)"


def test_inline_text_over_the_limit_is_refused():
    problem(text_of(counter()) + "#" * (2 * MAX_CONFIG_BYTES), "the config is 2.0 MiB; the limit is 1 MiB")


def test_fifo_is_refused_at_once(tmp_path):
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)  # nobody writes: a blocking open or read would wait forever
    assert failing(f"@{path}") == f"{path}: cannot read the config file: it is a FIFO, not a regular file"


def test_dev_zero_is_refused_at_once():
    assert failing("@/dev/zero") == "/dev/zero: cannot read the config file: it is a character device, not a regular file"


def test_symlink_to_a_device_is_refused(tmp_path):
    link = tmp_path / "config.yaml"
    link.symlink_to("/dev/zero")
    assert failing(f"@{link}").endswith("it is a character device, not a regular file")


def test_symlink_to_a_regular_file_loads(tmp_path):
    # a Kubernetes ConfigMap volume: config.yaml -> ..data/config.yaml
    (tmp_path / "real.yaml").write_text(text_of(counter()))
    (tmp_path / "config.yaml").symlink_to(tmp_path / "real.yaml")
    assert len(load_config(f"@{tmp_path / 'config.yaml'}", CATALOG).metrics) == 1


# --- nesting and numbers -----------------------------------------------------------------------


def test_nesting_500_levels_is_one_line():
    text = "metrics_name: t\nmetrics: " + "[" * 500 + "]" * 500 + "\n"
    assert failing(text) == ("inline config: metrics[0]: each metric must be a mapping with name, type, category "
                             "and gadget, got a list")


def test_nesting_beyond_what_the_parser_allows_is_one_line():
    text = "metrics_name: t\nmetrics: " + "[" * 5000 + "]" * 5000 + "\n"
    assert failing(text) == "inline config: invalid YAML: nested too deeply"


@pytest.mark.parametrize("low", [3_000_000, 10**30])
def test_exp2_min_of_millions_is_one_line(low):
    source = text_of(histogram(bucket={"type": "exp2", "min": low, "max": low + 2}))
    problem(source, 'metric "exec_latency": bucket bounds exceed the range of a float; lower max or multiplier')


def test_integer_of_thousands_of_digits_is_one_line():
    message = failing(text_of(histogram(bucket={"type": "exp2", "min": 0, "max": 10})).replace("max: 10", "max: " + "9" * 5000))
    assert message.startswith("inline config: invalid YAML: ") and len(message) < 300, message


# --- long values are cut -----------------------------------------------------------------------


def test_ten_megabyte_regex_is_not_echoed_whole(capfd):
    pattern = "(" + "a" * 10_000_000  # unbalanced: RE2 refuses it
    data = {"metrics_name": "t", "metrics": [counter(selector=[f"comm:~{pattern}"])]}
    with pytest.raises(ConfigError) as info:
        bind_config(data, CATALOG)
    message = str(info.value)
    assert "\n" not in message and len(message) < 1000, message[:2000]
    assert message.startswith('inline config: metric "executed_processes": selector "comm:~(aaaa')
    assert '…" (10,000,007 characters)' in message  # the selector, cut
    assert 'invalid regular expression "(aaa' in message and '…" (10,000,001 characters)' in message
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # RE2's own logging stays silent


@pytest.mark.parametrize("pattern, reason", [
    ("a" * 900_000, "pattern too large - compile failed"),  # within the file limit, beyond RE2's memory
    ("(?:a{1000}){1000}", "invalid repetition size: {1000}"),
])
def test_regex_refused_by_re2_is_one_line_and_re2_logs_nothing(pattern, reason, tmp_path, capfd):
    path = tmp_path / "config.yaml"
    path.write_text(text_of(counter(selector=[f"comm:~{pattern}"])))
    message = failing(f"@{path}")
    assert message.startswith(f'{path}: metric "executed_processes": selector "comm:~') and len(message) < 1000
    assert message.endswith(f"{reason} ({RULES})")  # every selector error ends with the rules
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_long_name_and_unknown_key_are_cut():
    name = "n" * 1_000_000
    message = failing(text_of(counter(name=name, labels=["nope"])))
    assert len(message) < 1000 and "(1,000,000 characters)" in message
    message = failing(text_of(counter(**{"k" * 1_000_000: 1})))
    assert len(message) < 1000 and 'unknown key "kkk' in message


# --- reserved names ----------------------------------------------------------------------------


@pytest.mark.parametrize("name, metric, phrase", [
    ("ig_info", "gauge", 'name "ig_info" is reserved'),
    ("ig_gadget_running", "gauge", 'name "ig_gadget_running" is reserved'),
    ("ig_events_received_total", "counter", 'name "ig_events_received_total" (exposed as ig_events_received) is reserved'),
    ("ig.info", "gauge", 'name "ig.info" (exposed as ig_info) is reserved'),
    ("ig_anything", "counter", 'name "ig_anything" is reserved: names starting with ig_ are ig\'s own metrics'),
])
def test_names_of_igs_own_metrics_are_reserved(name, metric, phrase):
    item = counter(name=name) if metric == "counter" else {
        "name": name, "type": "gauge", "category": "snapshot", "gadget": "process"}
    problem(text_of(item), f'metric "{name}": {phrase}')


@pytest.mark.parametrize("name", ["igx_info", "IG_info", "my_ig_info", "ig"])
def test_names_merely_like_igs_are_allowed(name):
    assert load_config(text_of(counter(name=name)), CATALOG).metrics[0].name == name


# --- aliases -----------------------------------------------------------------------------------


def test_alias_bomb_is_refused_before_it_is_expanded():
    labels = "[" + ",".join(["comm"] * 5000) + "]"
    text = ("metrics_name: t\nmetrics: [&m {name: a, type: counter, category: trace, gadget: exec, labels: "
            + labels + "}, " + ",".join(["*m"] * 20_000) + "]\n")
    assert len(text) < 100_000  # 10**8 values out of less than 100 kB
    assert failing(text) == "inline config: aliases expand the config to more than 1,000,000 values"


def test_alias_inside_itself_is_one_line():
    problem("metrics_name: t\nmetrics: &a [*a]\n", "an alias refers to a value that contains it")


def test_ordinary_aliases_still_work():
    text = "metrics_name: t\nmetrics:\n  - &c {name: a, type: counter, category: trace, gadget: exec, labels: &l [comm]}\n" \
           "  - {name: b, type: counter, category: trace, gadget: exec, labels: *l}\n"
    assert [m.label_columns for m in load_config(text, CATALOG).metrics] == [("comm",), ("comm",)]


# --- the fast constructor gives what PyYAML's gives ----------------------------------------------


@pytest.mark.parametrize("text", [
    *(p.read_text() for p in sorted(Path(__file__).resolve().parents[1].glob("examples/*.yaml"))),
    "a: [1, 2.5, -3, 0755, 1e5, .inf, true, False, ~, null, '', x, '5']\nb: &x {c: 1}\nd: *x\n",
    "a: !!str 5\nb: !!int 0x10\nc: {~: 1, null: 2}\n",
])
def test_plain_constructor_matches_pyyaml(text):
    from igcore.config.yaml12 import _NOT_PLAIN, _construct_plain, _FastLoader

    fast = _FastLoader(text)
    ours = _construct_plain(fast, fast.get_single_node())
    assert ours is not _NOT_PLAIN
    assert repr(ours) == repr(_FastLoader(text).get_single_data())
