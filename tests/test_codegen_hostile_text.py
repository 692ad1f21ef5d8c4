"""No config text reaches the C that ig compiles as root (docs/security.md, "Who can write the config").

Configs are drawn with arbitrary Unicode (quotes, backslashes, `*/`, newlines, `%`, `#`, NUL) in
metric names, selector values, labels and fields, for every installed gadget that declares kernel
columns. Each config is either refused in one line or bound; for every metric placed in the kernel
the program's C is generated, and:

- its only comments, preprocessor lines and string literal are the generator's own;
- no run of three bytes of the config's text that is not made of identifier characters or digits
  appears in it, beyond what the generator writes for any config (measured on a plain config of the
  same gadget, numbers read as one symbol);
- drawn programs of trace exec compile and load in the real kernel.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from igcore.columns import CONTAINER_COLUMN_NAMES
from igcore.config import ConfigError, bind_config
from igcore.gadgets import GadgetContext
from igcore.kernel import KernelProgram, place
from igcore.plugins import load_catalog
from igcore.selectors import literal
from tests.fixtures.igrun import IG

CATALOG = load_catalog()
KERNEL_SPECS = [spec for name in CATALOG.names("trace")
                if (spec := CATALOG.get("trace", name)) is not None and any(c.kernel for c in spec.columns)]
OPS = ["", "!", ">", ">=", "<", "<=", "!>", "~", "!~"]
ATTACKS = ["*/", "*/\n#error INJECTED\n/*", '"', "\\", "%s%n", "#include \"/etc/passwd\"", "\0", "??/",
           "\n}\nTRACEPOINT_PROBE(syscalls, sys_enter_kill) { return 0; }\n/*", "'", "\u2028", "é/*"]

# Any text at all, and the attacks spliced into it.
hostile = st.one_of(st.text(max_size=24), st.sampled_from(ATTACKS),
                    st.tuples(st.text(max_size=6), st.sampled_from(ATTACKS), st.text(max_size=6)).map("".join))
# Names a config may hold (no control characters): the ones that reach the generator.
printable = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=24)
names = st.one_of(printable, st.sampled_from([a for a in ATTACKS if not re.search(r"[\x00-\x1f\u2028]", a)]), hostile)


@st.composite
def metric(draw, spec) -> dict:
    kernel = [c.name for c in spec.columns if c.kernel]
    integers = [c.name for c in spec.columns if c.kernel and c.kind.numeric]
    columns = st.one_of(st.sampled_from(kernel + list(CONTAINER_COLUMN_NAMES)), hostile)
    kind = draw(st.sampled_from(["counter", "histogram"]))
    entry = {"name": draw(names), "type": kind, "category": "trace", "gadget": spec.name,
             # a quoted literal reaches the generator whatever it holds (docs/config.md, "Selectors")
             "selector": [f"{draw(columns)}:{draw(st.sampled_from(OPS))}"
                          f"{draw(st.one_of(hostile, st.integers().map(str), hostile.map(literal)))}"
                          for _ in range(draw(st.integers(0, 3)))],
             "labels": draw(st.lists(columns, max_size=3))}
    if kind == "histogram" or draw(st.booleans()):
        entry["field"] = draw(st.one_of(st.sampled_from(integers), hostile))
    if kind == "histogram":
        entry["bucket"] = {"type": draw(st.sampled_from(["exp2", "linear"])), "min": 0, "max": draw(st.integers(1, 12)),
                           "multiplier": draw(st.sampled_from([1, 0.5, 1000, "0.0001"]))}
        if draw(st.booleans()):   # a native histogram: its thresholds are numbers in a map, its code the generator's
            entry["bucket"] = {"type": "native", "schema": draw(st.integers(0, 8)),
                               "multiplier": draw(st.sampled_from([1, 0.37, 1000, "0.0001"]))}
    return entry


@st.composite
def configs(draw) -> tuple[object, dict]:
    spec = draw(st.sampled_from(KERNEL_SPECS))
    return spec, {"metrics_name": draw(names), "metrics": draw(st.lists(metric(spec), min_size=1, max_size=6))}


def _kernel_program(spec, cfg) -> KernelProgram | None:
    pairs = [(bound, placement) for bound in cfg.metrics if (placement := place(bound)).in_kernel]
    return KernelProgram(spec, pairs, ring_needed=False, max_series=100) if pairs else None


def _texts(data: dict) -> list[str]:
    """Every string the config holds, whole."""
    out = [data["metrics_name"]]
    for entry in data["metrics"]:
        out += [entry["name"], *entry["selector"], *entry["labels"], entry.get("field") or ""]
    return out


def _normal(code: bytes, spec) -> bytes:
    """Plugin C (its KernelField expressions) out, and every number one symbol."""
    for column in spec.columns:
        if column.kernel:
            code = code.replace(column.kernel.expr.encode(), b"@")
    return re.sub(rb"[0-9]+", b"0", code)


def _generator_vocabulary(spec) -> set[bytes]:
    """The runs of three bytes the generator writes for a plain config of this gadget."""
    kernel = [c for c in spec.columns if c.kernel]
    ints = [c.name for c in kernel if c.kind.numeric]
    strings = [c.name for c in kernel if not c.kind.numeric]
    plain = [{"name": f"m{i}", "type": "counter", "category": "trace", "gadget": spec.name,
              "selector": [f"{ints[0]}:{op}5"], "labels": [c.name for c in kernel]} for i, op in enumerate(OPS[:6])]
    plain += [{"name": f"s{i}", "type": "counter", "category": "trace", "gadget": spec.name,
               "selector": [f"{column}:{neg}abc"], "labels": [column]}
              for i, (column, neg) in enumerate((c, n) for c in strings for n in ("", "!"))]
    plain.append({"name": "h", "type": "histogram", "category": "trace", "gadget": spec.name, "field": ints[0],
                  "selector": [], "labels": [], "bucket": {"type": "exp2", "min": 0, "max": 12}})
    plain.append({"name": "n", "type": "histogram", "category": "trace", "gadget": spec.name, "field": ints[0],
                  "selector": [], "labels": [], "bucket": {"type": "native"}})
    cfg = bind_config({"metrics_name": "plain", "metrics": plain}, CATALOG)
    code = _normal(_kernel_program(spec, cfg).c_code().encode(), spec)
    return {code[i:i + 3] for i in range(len(code) - 2)}


VOCABULARY = {spec.name: _generator_vocabulary(spec) for spec in KERNEL_SPECS}
_WORD = re.compile(rb"[A-Za-z0-9_]+")
_GENERATOR_COMMENT = re.compile(r"/\* (metric [0-9]+|Generated by igcore\.kernel for the metrics computed in this program\.) \*/")
_GENERATOR_DIRECTIVE = re.compile(r"#define IG_KERNEL_METRICS_UPDATE\(\) .*|#ifndef IG_KERNEL_MAP_FLAGS"
                                  r"|#define IG_KERNEL_MAP_FLAGS BPF_F_NO_PREALLOC|#endif"
                                  r"|#define [A-Z][A-Z0-9_]* 1")   # a KernelField's `needs`, the plugin's identifier


def _bind(data: dict):
    try:
        return bind_config(data, CATALOG, "drawn.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", message), message
        return None


def _check_code(code: str, spec, data: dict) -> None:
    assert re.fullmatch(r"[\x20-\x7e\n]*", code), "generated C outside printable ASCII"
    assert "//" not in code
    for comment in re.findall(r"/\*.*?\*/", code, flags=re.S):
        assert _GENERATOR_COMMENT.fullmatch(comment), comment
    assert code.count("/*") == code.count("*/") == len(re.findall(r"/\*.*?\*/", code, flags=re.S))
    for line in code.splitlines():
        if line.lstrip().startswith("#"):
            assert _GENERATOR_DIRECTIVE.fullmatch(line), line
    assert set(re.findall(r'"[^"\n]*"', code)) <= {'"hash"'}
    normal = _normal(code.encode(), spec)
    vocabulary = VOCABULARY[spec.name]
    for text in _texts(data):
        raw = re.sub(rb"[0-9]+", b"0", text.encode("utf-8", "surrogatepass"))
        for i in range(len(raw) - 2):
            window = raw[i:i + 3]
            if not _WORD.fullmatch(window) and window not in vocabulary:
                assert window not in normal, f"config text {window!r} of {text!r} is in the generated C"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_config_text_never_reaches_the_generated_c(drawn):
    spec, data = drawn
    cfg = _bind(data)
    if cfg is None:
        return
    program = _kernel_program(spec, cfg)
    if program is not None:
        _check_code(program.c_code(), spec, data)


EXEC = CATALOG.get("trace", "exec")


@pytest.mark.skipif(EXEC is None, reason="ig-gadget-exec is not installed")
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(metric(EXEC) if EXEC else st.nothing(), min_size=3, max_size=8))
def test_drawn_exec_programs_compile_and_load(require_bpf, metrics):
    cfg = _bind({"metrics_name": "drawn", "metrics": metrics})
    program = cfg and _kernel_program(EXEC, cfg)
    if program is None:
        return
    gadget = EXEC.factory(GadgetContext(kernel=program))
    gadget.start(lambda rows: None)   # raises if the kernel or bcc refuses the program
    try:
        assert program.read(0) is not None
    finally:
        gadget.stop()


def test_the_reported_injection_is_refused_in_one_line(tmp_path):
    """The config that made clang print `error: INJECTED`: refused before anything is compiled."""
    path = tmp_path / "inject.yaml"
    path.write_text('metrics_name: m\nmetrics:\n  - name: "x */\\n#error INJECTED\\n/*"\n'
                    "    type: counter\n    category: trace\n    gadget: exec\n    selector: [\"comm:cat\"]\n")
    done = subprocess.run([IG, "prometheus", "--config", f"@{path}", "--check"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "name holds the control character \\n" in done.stderr, done.stderr
    assert "INJECTED" not in done.stderr.split("name holds")[1]


@pytest.mark.parametrize("gadget", [spec.name for spec in KERNEL_SPECS])
def test_a_name_that_closes_the_comment_stays_out_of_the_c(gadget):
    """`*/` and `#` without a newline are a valid name (exposed with `_`): the C never holds them."""
    spec = CATALOG.get("trace", gadget)
    name = '*/ int ig_injected; /* #include "/etc/passwd"'
    cfg = bind_config({"metrics_name": "m", "metrics": [{"name": name, "type": "counter", "category": "trace",
                                                          "gadget": gadget}]}, CATALOG)
    code = _kernel_program(spec, cfg).c_code()
    assert "ig_injected" not in code and "passwd" not in code
    _check_code(code, spec, {"metrics_name": "m", "metrics": [{"name": name, "selector": [], "labels": []}]})
