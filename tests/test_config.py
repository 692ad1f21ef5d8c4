"""Config loading and validation against a synthetic gadget catalog: every rule, one line each."""

from __future__ import annotations

import pytest

from igcore.config import BoundMetric, Config, MetricConfig, bind_config, load_config
from igcore.errors import ConfigError
from igcore.plugins import GadgetCatalog
from igcore.selectors import RULES
from tests.fixtures.config_catalog import CATALOG, EXEC_COLUMNS, counter, gauge, histogram, problem, text_of


def load(*metrics: dict, **top) -> Config:
    return load_config(text_of(*metrics, **top), CATALOG)


def metric_problem(metric: dict, *phrases: str) -> str:
    return problem(text_of(metric), *phrases)


# --- a valid config ----------------------------------------------------------------------------


def test_valid_config_binds_everything():
    config = load(
        counter(selector=["comm:cat", {"k8s.namespace": "default"}], labels=["k8s.namespace", "COMM", "ret"]),
        gauge(labels=["comm"], field="threads"),
        histogram(),
    )
    assert isinstance(config, Config)
    assert config.metrics_name == "my_metrics"
    assert config.origin == "inline config"
    c, g, h = config.metrics
    assert isinstance(c, BoundMetric) and isinstance(c.config, MetricConfig)
    assert c.spec is CATALOG.get("trace", "exec")
    assert c.config.selector == ("comm:cat", "k8s.namespace:default")
    assert c.label_columns == ("k8s.namespace", "comm", "retval")
    assert c.label_names == ("k8s_namespace", "comm", "retval")
    assert c.field_column is None and c.bounds is None
    assert c.family_name == "executed_processes"
    assert c.description == "executed_processes: counter of trace exec events"
    row = EXEC_COLUMNS.defaults() | {"comm": "cat", "k8s.namespace": "default"}
    assert c.predicate(row) and not c.predicate(row | {"comm": "dog"})
    assert g.predicate is None and g.field_column == "threads"
    assert g.description == "processes: gauge of the sum of threads over snapshot process rows"
    assert h.family_name == "exec_latency_seconds"
    assert h.field_column == "latency"
    assert h.bounds == (0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512)
    assert h.description == "exec_latency: histogram of latency in trace exec events"
    assert config.specs == (CATALOG.get("trace", "exec"), CATALOG.get("snapshot", "process"))


def test_design_example_loads():
    source = """
metrics_name: my_metrics
metrics:
  - name: executed_processes
    type: counter
    category: trace
    gadget: exec
    selector: ["comm:cat"]
    labels: [k8s.namespace]
  - name: exec_latency
    type: histogram
    category: trace
    gadget: exec
    field: latency
    bucket: {type: exp2, min: 0, max: 15, multiplier: 100000, unit: ns}
"""
    config = load_config(source, CATALOG)
    assert [m.family_name for m in config.metrics] == ["executed_processes", "exec_latency_nanoseconds"]
    assert config.metrics[1].bounds[-1] == 1.6384e9


def test_counter_total_suffix_not_doubled_and_field_counts():
    (m,) = load(counter(name="bytes_total", field="latency")).metrics
    assert m.family_name == "bytes"
    assert m.description == "bytes_total: counter of the sum of latency over trace exec events"


def test_empty_metrics_list_is_allowed():
    assert load().metrics == ()


def test_selector_and_labels_may_be_null():
    (m,) = load_config(text_of(counter(selector=None, labels=None)), CATALOG).metrics
    assert m.config.selector == () and m.predicate is None and m.label_columns == ()


@pytest.mark.parametrize(
    "item, expected",
    [
        ({"k8s.namespace": "default"}, "k8s.namespace:default"),
        ({"truncated": True}, "truncated:true"),
        ({"truncated": False}, "truncated:false"),
        ({"pid": 5}, "pid:5"),
        ({"latency": 1.5}, "latency:1.5"),
        ({"k8s.namespace": None}, "k8s.namespace:"),
        ({"comm": "!cat"}, "comm:!cat"),
        ("comm:cat", "comm:cat"),
    ],
)
def test_mapping_selectors_are_normalised(item, expected):
    (m,) = load(counter(selector=[item])).metrics
    assert m.config.selector == (expected,)


def test_yaml_12_scalars():
    source = """
metrics_name: m
metrics:
  - name: x
    type: counter
    category: trace
    gadget: exec
    selector:
      - k8s.namespace: no
      - comm: 0755
      - truncated: TRUE
"""
    (m,) = load_config(source, CATALOG).metrics
    assert m.config.selector == ("k8s.namespace:no", "comm:755", "truncated:true")


def test_multiplier_written_as_exponent_is_a_number():
    (m,) = load_config(text_of(histogram()).replace("0.0001", "1e-4"), CATALOG).metrics
    assert m.bounds[:3] == (0.0001, 0.0002, 0.0004)


def test_linear_bucket_is_exact():
    (m,) = load(histogram(bucket={"type": "linear", "min": 0, "max": 4, "multiplier": 0.0001})).metrics
    assert m.bounds == (0.0, 0.0001, 0.0002, 0.0003)


def test_file_source(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(text_of(counter()))
    config = load_config(f"@{path}", CATALOG)
    assert config.origin == str(path)
    assert config.metrics[0].family_name == "executed_processes"


# --- equality across reloads -------------------------------------------------------------------


def test_bound_metrics_compare_by_config_and_gadget():
    first = load(counter(selector=["comm:cat"]), gauge(), histogram())
    again = load(counter(selector=[{"comm": "cat"}]), gauge(), histogram())
    assert first.metrics == again.metrics
    assert hash(first.metrics[0]) == hash(again.metrics[0])
    assert first.metrics[0] is not again.metrics[0]
    assert set(first.metrics) & set(again.metrics) == set(first.metrics)
    changed = load(counter(selector=["comm:dog"]), gauge(labels=["comm"]), bucket(max=11))
    assert not set(first.metrics) & set(changed.metrics)


def test_same_config_on_another_gadget_differs():
    a = load(counter()).metrics[0]
    b = load(counter(gadget="dns")).metrics[0]
    assert a != b


def test_metric_config_is_frozen():
    m = load(counter()).metrics[0]
    with pytest.raises(ValueError):  # pydantic's ValidationError
        m.config.name = "other"


# --- top level ---------------------------------------------------------------------------------


def test_missing_metrics_name():
    problem("metrics: []", 'missing required key "metrics_name"')


@pytest.mark.parametrize("value", ['""', '"  "'])
def test_empty_metrics_name(value):
    problem(f"metrics_name: {value}\nmetrics: []", "metrics_name is empty")


@pytest.mark.parametrize("char, shown", [("\\n", "\\n"), ("\\0", "\\x00"), ("\\x85", "\\x85"), ("\\u2028", "\\u2028")])
@pytest.mark.parametrize("where", ["metrics_name", "name", "gadget"])
def test_names_with_control_characters_are_refused(where, char, shown):
    """A name is one line of text wherever it is shown (logs, --check); none reaches generated C."""
    fields = {"metrics_name": '"m"', "name": '"n"', "gadget": '"exec"'}
    fields[where] = f'"a{char}b"'
    text = (f"metrics_name: {fields['metrics_name']}\nmetrics:\n  - {{name: {fields['name']}, type: counter, "
            f"category: trace, gadget: {fields['gadget']}}}")
    problem(text, f"{where} holds the control character {shown} (names are one line of text)")


def test_metrics_name_must_be_a_string():
    problem("metrics_name: 5\nmetrics: []", "metrics_name must be a string, got 5")


def test_missing_metrics():
    problem("metrics_name: m", 'missing required key "metrics"')


@pytest.mark.parametrize(
    "value, got",
    [("{}", "got a mapping"), ("x", 'got "x"'), ("null", "got nothing (null)"), ("5", "got 5")],
)
def test_metrics_not_a_list(value, got):
    problem(f"metrics_name: m\nmetrics: {value}", "metrics must be a list", got)


def test_unknown_top_level_key():
    problem(
        text_of(metric=[]),
        'unknown top-level key "metric" (did you mean "metrics"? allowed keys: metrics_name, metrics)',
    )


def test_top_level_not_a_mapping():
    problem("- a\n- b", "the config must be a mapping with metrics_name and metrics, got a list")


def test_inline_word_hints_at_the_file_syntax():
    problem("config.yaml", 'got "config.yaml" (to read a file, write @path)')


# --- YAML and files ----------------------------------------------------------------------------


def test_yaml_syntax_error_names_the_line():
    problem("metrics_name: m\nmetrics:\n  - name: [x\n", "invalid YAML at line", "line 4")


def test_yaml_syntax_error_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("metrics_name: m\nmetrics: [\n  a: b: c\n")
    problem(f"@{path}", "invalid YAML at line 3", origin=str(path))


def test_duplicate_yaml_key():
    problem("metrics_name: m\nmetrics: []\nmetrics_name: n\n", 'invalid YAML at line 3, column 1: key "metrics_name" appears twice')


def test_unsafe_yaml_tag_is_rejected():
    problem("metrics_name: !!python/object:os.system x\nmetrics: []", "invalid YAML at line 1")


@pytest.mark.parametrize("text", ["", "   \n\n", "# only a comment\n"])
def test_empty_inline_config(text):
    problem(text, "the config is empty")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    problem(f"@{path}", "the config is empty", origin=str(path))


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    problem(f"@{path}", "cannot read the config file: no such file", origin=str(path))


def test_directory_instead_of_file(tmp_path):
    problem(f"@{tmp_path}", "cannot read the config file: it is a directory", origin=str(tmp_path))


def test_file_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"metrics_name: caf\xe9\n")
    problem(f"@{path}", "cannot read the config file: it is not UTF-8 text", origin=str(path))


def test_file_not_yaml(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("metrics_name: m\n\tmetrics: []\n")
    problem(f"@{path}", "invalid YAML at line 2", origin=str(path))


def test_at_without_path():
    with pytest.raises(ConfigError, match='no file name after "@"'):
        load_config("@", CATALOG)


def test_errors_in_files_name_the_file_and_metric(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(text_of(counter(labels=["comn"])))
    message = problem(f"@{path}", origin=str(path))
    assert message.startswith(f'{path}: metric "executed_processes": unknown column "comn" in labels (did you mean "comm"? columns: pid, uid, retval/ret, ')


# --- a metric's required keys, types and words -------------------------------------------------


@pytest.mark.parametrize("key", ["type", "category", "gadget"])
def test_metric_missing_key_names_the_metric(key):
    metric = counter()
    del metric[key]
    metric_problem(metric, f'metric "executed_processes": missing required key "{key}"')


def test_metric_without_name_is_named_by_index():
    metric = counter()
    del metric["name"]
    problem(text_of(counter(name="first"), metric), 'inline config: metrics[1]: missing required key "name"')


@pytest.mark.parametrize("value, message", [("", "name is empty"), (5, "name must be a string, got 5")])
def test_bad_name_is_named_by_index(value, message):
    problem(text_of(counter(name=value)), f"metrics[0]: {message}")


def test_metric_not_a_mapping():
    problem(text_of("comm:cat"), 'metrics[0]: each metric must be a mapping with name, type, category and gadget, got "comm:cat"')


def test_unknown_type():
    metric_problem(counter(type="summary"), 'unknown type "summary" (expected counter, gauge or histogram)')


def test_unknown_category():
    metric_problem(counter(category="probe"), 'unknown category "probe" (expected trace or snapshot)')


def test_unknown_gadget_lists_that_category():
    metric_problem(counter(gadget="exce"), 'unknown gadget "exce" in category trace (installed trace gadgets: dns, exec)')


def test_gadget_of_another_category():
    metric_problem(
        counter(gadget="process"),
        'gadget "process" is a snapshot gadget, not trace (installed trace gadgets: dns, exec)',
    )


def test_no_gadgets_installed():
    with pytest.raises(ConfigError, match="no trace gadgets are installed"):
        load_config(text_of(counter()), GadgetCatalog())


@pytest.mark.parametrize(
    "metric, phrase",
    [
        (counter(category="snapshot", gadget="process"), "a counter needs a trace gadget, but category is snapshot"),
        (histogram(category="snapshot", gadget="process"), "a histogram needs a trace gadget, but category is snapshot"),
        (gauge(category="trace", gadget="exec"), "a gauge needs a snapshot gadget, but category is trace"),
    ],
)
def test_type_and_category_must_fit(metric, phrase):
    metric_problem(metric, phrase)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("gadget", 5, "gadget must be a string, got 5"),
        ("gadget", "", "gadget is empty"),
        ("labels", "comm", 'labels must be a list, got "comm"'),
        ("labels", [5], "labels[0] must be a string, got 5"),
        ("selector", "comm:cat", 'selector must be a list, got "comm:cat"'),
        ("field", ["latency"], "field must be a string, got a list"),
        ("bucket", [1], "bucket must be a mapping, got a list"),
        ("type", True, "unknown type true"),
    ],
)
def test_wrong_value_types(key, value, message):
    metric_problem(counter(**{key: value}), f'metric "executed_processes": {message}')


@pytest.mark.parametrize(
    "item, phrase",
    [
        (5, 'selector[1] must be a "column:rule" string or a one-key mapping like {comm: cat}, got 5'),
        ({"comm": "cat", "pid": 1}, "selector[1] must be a \"column:rule\" string or a one-key mapping"),
        ({"comm": ["cat"]}, "selector[1] must be a \"column:rule\" string or a one-key mapping like {comm: cat}, got a mapping"),
    ],
)
def test_bad_selector_items(item, phrase):
    metric_problem(counter(selector=["comm:cat", item]), 'metric "executed_processes": ' + phrase, f"({RULES})")


# --- columns -----------------------------------------------------------------------------------


def test_unknown_label_column():
    metric_problem(
        counter(labels=["comm", "comn"]),
        'metric "executed_processes": unknown column "comn" in labels (did you mean "comm"? columns: pid, uid, retval/ret, latency, comm, truncated, k8s.node, k8s.namespace,',
    )


def test_unknown_label_column_without_a_close_match():
    metric_problem(counter(labels=["qqqqqq"]), 'unknown column "qqqqqq" in labels (columns: pid, ')


def test_unknown_field_column():
    metric_problem(counter(field="latncy"), 'unknown column "latncy" in field (did you mean "latency"? columns: ')


def test_unknown_selector_column():
    metric_problem(
        counter(selector=["comn:cat"]),
        'metric "executed_processes": selector "comn:cat": unknown column "comn" (did you mean "comm"? columns: pid,',
    )


@pytest.mark.parametrize("field, kind", [("comm", "str"), ("truncated", "bool")])
def test_non_numeric_field(field, kind):
    metric_problem(
        counter(field=field),
        f'field "{field}" is not numeric: column {field} is {kind} (numeric columns: pid, uid, retval/ret, latency)',
    )


def test_duplicate_label():
    metric_problem(counter(labels=["retval", "ret"]), 'duplicate label retval in labels (from "retval" and "ret")')


@pytest.mark.parametrize(
    "selector, phrase",
    [
        ("pid:abc", 'selector "pid:abc": "abc" is not a number, but column pid is int'),
        ("pid:~1", 'selector "pid:~1": ~ (regular expression) needs a string column'),
        ("comm:~(", 'selector "comm:~(": invalid regular expression "("'),
        ("truncated:>0", 'selector "truncated:>0": column truncated is bool: only equality'),
        ("comm", 'selector "comm": missing ":"'),
    ],
)
def test_bad_selector(selector, phrase):
    metric_problem(counter(selector=["comm:cat", selector]), 'metric "executed_processes": ' + phrase)


# --- histograms and buckets --------------------------------------------------------------------


def test_histogram_without_field():
    metric = histogram()
    del metric["field"]
    metric_problem(metric, 'metric "exec_latency": a histogram needs field')


def test_histogram_without_bucket():
    metric = histogram()
    del metric["bucket"]
    metric_problem(metric, 'metric "exec_latency": a histogram needs bucket')


@pytest.mark.parametrize("metric", [counter(bucket={"type": "exp2", "min": 0, "max": 3}), gauge(bucket={"type": "exp2", "min": 0, "max": 3})])
def test_bucket_on_a_non_histogram(metric):
    metric_problem(metric, "bucket is only for histograms, but this metric is a " + metric["type"])


def bucket(**changes) -> dict:
    return histogram(bucket={**histogram()["bucket"], **changes})


@pytest.mark.parametrize(
    "metric, phrase",
    [
        (bucket(type="log"), 'unknown bucket type "log" (expected exp2, linear or native)'),
        (bucket(min=5, max=5), "bucket max (5) must be greater than min (5)"),
        (bucket(min=5, max=2), "bucket max (2) must be greater than min (5)"),
        (bucket(min=-1), "bucket min must not be negative, got -1"),
        (bucket(min=1.5), "bucket min must be an integer, got 1.5"),
        (bucket(max="10"), 'bucket max must be an integer, got "10"'),
        (bucket(unit="sec"), 'unknown bucket unit "sec" (expected ns, us, ms, s or By)'),
        (bucket(multiplier=0), "bucket multiplier must be a positive number"),
        (bucket(multiplier="fast"), "bucket multiplier must be a number"),
        (bucket(max=2000), "bucket bounds exceed the range of a float"),
        (bucket(unti="s"), 'unknown key "unti" in bucket (did you mean "unit"? allowed keys: type, min, max, multiplier, unit, schema, classic_max)'),
        (histogram(bucket={"type": "exp2", "min": 0}), 'missing required key "max" in bucket'),
        (bucket(schema=3), "bucket schema is for native buckets only"),
        (histogram(bucket={"type": "native", "max": 3}), "bucket max is for exp2 and linear buckets"),
        (histogram(bucket={"type": "native", "schema": 9}), "bucket schema must be 0 to 8, got 9"),
        (histogram(bucket={"type": "native", "schema": -1}), "bucket schema must be 0 to 8, got -1"),
        (histogram(bucket={"type": "native", "classic_max": 1}), "bucket classic_max must be 2 to 10000, got 1"),
        # quoted in the YAML (a written number of that size is a float already: inf or 0)
        (histogram(bucket={"type": "native", "multiplier": "1.0e+400"}), "bucket multiplier 1.0E+400 is beyond the range of a float"),
        (histogram(bucket={"type": "native", "multiplier": "1.0e-400"}), "bucket multiplier 1.0E-400 is beyond the range of a float"),
        (histogram(bucket={"type": "native", "scheme": 1}), 'unknown key "scheme" in bucket (did you mean "schema"?'),
    ],
)
def test_bucket_problems(metric, phrase):
    metric_problem(metric, 'metric "exec_latency": ' + phrase)


# --- unknown keys and duplicates ---------------------------------------------------------------


def test_unknown_metric_key():
    metric_problem(
        counter(lables=["comm"]),
        'metric "executed_processes": unknown key "lables" (did you mean "labels"? allowed keys: name, type, category, gadget, selector, labels, field, bucket)',
    )


def test_unknown_metric_key_without_a_close_match():
    metric_problem(counter(zzz=1), 'unknown key "zzz" (allowed keys: name,')


@pytest.mark.parametrize(
    "first, second, phrase",
    [
        ("x", "x", 'duplicate metric name "x" (also the name of metrics[0] "x")'),
        ("a.b", "a_b", 'duplicate metric name "a_b" (also the name of metrics[0] "a.b")'),
        ("x", "x_total", 'duplicate metric name "x" (also the name of metrics[0] "x")'),
    ],
)
def test_duplicate_metric_names(first, second, phrase):
    message = problem(text_of(counter(name=first), counter(name=second)), phrase)
    assert message.startswith(f'inline config: metric "{second}": ')


def test_duplicates_across_types_are_caught():
    problem(text_of(counter(name="processes"), gauge(name="processes")), 'metric "processes": duplicate metric name "processes"')


def test_histogram_unit_suffix_counts_for_duplicates():
    problem(text_of(histogram(name="lat"), gauge(name="lat_seconds")), 'duplicate metric name "lat_seconds"')


def test_counter_named_total_only():
    metric_problem(counter(name="_total"), 'name "_total" is empty once the _total that counters add is removed')


def test_first_problem_is_reported():
    message = problem(text_of(counter(labels=["comn"]), counter(name="y", gadget="nope")))
    assert "comn" in message and "nope" not in message


def test_bind_config_takes_parsed_data():
    config = bind_config({"metrics_name": "m", "metrics": [counter()]}, CATALOG, "agent")
    assert config.origin == "agent"
    with pytest.raises(ConfigError, match="^agent: the config is empty$"):
        bind_config(None, CATALOG, "agent")
