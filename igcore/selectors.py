"""Selectors: `column:rule` strings compiled once into fast row predicates (docs/config.md, "Selectors").

A rule is `value` (equal), `>=v`, `>v`, `<=v`, `<v` or `~re` (RE2, unanchored search); a leading
`!` negates it, so `!value` is "not equal" and `!~re` "does not match". The text is split on the
FIRST `:` only, so values (regexes, IPv6 addresses) may contain `:`.

A value that starts with `=`, `!`, `<`, `>` or `~` after the operator is refused, because it is
almost always another language's operator (`comm:!=cat` would silently mean "not `=cat`"); such a
value, or one that starts with `"`, is written in double quotes (`comm:"=cat"`), where a backslash
escapes `"` and itself (docs/config.md, "Selectors").

Predicates run once per event for every metric of a gadget, so all parsing and conversion happens
here: the values are converted to the column's kind up front, and the selectors of a metric are
turned into one generated function (`row["comm"] == v0 and row["pid"] >= v1`), with no loop, no
lookup of the column and no conversion left for the per-event call.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Iterable

import re2

from .columns import Column, Kind, Schema
from .quoting import QUOTE_LIMIT, control_character, quoted, shorten

Predicate = Callable[[dict], bool]

# Two-character operators first, so ">=5" is not read as ">" and "=5".
_ORDER_OPS = (">=", "<=", ">", "<")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_BOOLS = {"true": True, "1": True, "false": False, "0": False}

# RE2 results per distinct value: a regex search costs microseconds, a dict hit tens of
# nanoseconds, and matched columns (comm, qtype, names) repeat a lot. Cleared when full.
_MEMO_LIMIT = 4096

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error reaches the user as one line; no C++ log on stderr


# Ends every selector error: whatever went wrong, the user sees the grammar that is right.
RULES = ('rules: comm:cat equal, comm:!cat not equal, pid:>=5 >5 <=5 <5, comm:~regex, '
         'a leading ! negates any rule, comm:"=cat" a quoted literal')

# Characters that start an operator somewhere: a plain value must not start with one.
_OPERATOR_CHARS = "=!<>~"
# Other languages' operators, and the rule ig spells them with.
_FOREIGN_OPERATORS = {"!=": "!", "<>": "!", "==": "", "=": "", "=>": ">=", "=<": "<=", "=~": "~", "~=": "~"}


class SelectorError(ValueError):
    """A selector that cannot be compiled; `str()` is one line naming the selector and the rules."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"selector {quoted(text)}: {problem} ({RULES})")
        self.text = text
        self.problem = problem


@dataclass(frozen=True)
class _Term:
    """One selector as a piece of generated code: `{cell}` is the row's value, `{v}` the binding."""

    template: str
    binding: object
    cost: int  # cheap comparisons run before regex lookups


@dataclass(frozen=True)
class Selector:
    """A compiled selector. `value` is converted to the column's kind (for `~`, the pattern)."""

    text: str
    column: str  # canonical column name: the key the predicate reads
    op: str  # "=", ">=", ">", "<=", "<" or "~"
    value: object
    negated: bool
    predicate: Predicate = field(compare=False, repr=False)
    term: _Term = field(compare=False, repr=False)

    def __call__(self, row: dict) -> bool:
        return self.predicate(row)


def unknown_column(name: str, schema: Schema, where: str = "") -> str:
    """The phrase for a column that is not in the schema, with a suggestion and the choices."""
    guess = schema.closest(name)
    hint = f'did you mean "{guess}"? ' if guess else ""
    return f"unknown column {quoted(name)}{where} ({hint}columns: {column_list(schema)})"


def column_list(schema: Schema, columns: Iterable[Column] | None = None) -> str:
    """Column names for messages, aliases after a slash: `retval/ret`."""
    return ", ".join("/".join((c.name, *c.aliases)) for c in (schema if columns is None else columns))


def compile_selector(text: str, schema: Schema) -> Selector:
    """Parse `column:rule` against a schema; raise SelectorError for anything wrong with it."""
    if not isinstance(text, str):
        raise SelectorError(str(text), 'a selector must be a "column:rule" string')
    name, sep, rule = text.partition(":")
    if not sep:
        raise SelectorError(text, 'missing ":" between column and rule (write column:value, e.g. comm:cat)')
    if not name:
        raise SelectorError(text, 'no column name before ":"')
    column = schema.get(name)
    if column is None:
        raise SelectorError(text, unknown_column(name, schema))
    negated = rule.startswith("!")
    op, raw = _split_op(rule[1:] if negated else rule)
    raw = _value_text(text, name, column, rule, raw)
    value, term = _term(text, column, op, raw, negated)
    return Selector(text, column.name, op, value, negated, _generate([(column.name, term)], text), term)


def compile_selectors(texts: Iterable[str], schema: Schema) -> Predicate | None:
    """One predicate that holds when every selector holds; None when there are no selectors."""
    selectors = [compile_selector(t, schema) for t in texts]
    if not selectors:
        return None
    if len(selectors) == 1:
        return selectors[0].predicate
    ordered = sorted(selectors, key=lambda s: s.term.cost)  # `and` is commutative here
    return _generate([(s.column, s.term) for s in ordered], " and ".join(s.text for s in selectors))


def _split_op(rule: str) -> tuple[str, str]:
    if rule.startswith("~"):
        return "~", rule[1:]
    for op in _ORDER_OPS:
        if rule.startswith(op):
            return op, rule[len(op) :]
    return "=", rule


def literal(value: str) -> str:
    """`value` as a quoted literal rule: `compile_selector(f"comm:{literal(v)}")` has the value `v`."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value_text(text: str, name: str, column: Column, rule: str, raw: str) -> str:
    """The value of the rule: a quoted literal unquoted, a plain value checked for operator typos."""
    if raw.startswith('"'):
        return _unquote(text, raw)
    if raw[:1] and raw[0] in _OPERATOR_CHARS:
        junk = rule[: len(rule) - len(raw.lstrip(_OPERATOR_CHARS))]
        problem = f"{quoted(junk)} is not an operator of ig's selectors"
        if len(text) <= QUOTE_LIMIT and control_character(text) is None:  # the hints echo the text raw
            meant = _FOREIGN_OPERATORS.get(junk)
            hints = [] if meant is None else [f"write {name}:{meant}{rule[len(junk):]}"]
            if column.kind is Kind.STR:
                hints.append(f"a value that starts with {raw[0]} is quoted: "
                             f"{name}:{rule[: len(rule) - len(raw)]}{literal(raw)}")
            problem += f" ({'; '.join(hints)})" if hints else ""
        raise SelectorError(text, problem)
    return raw


def _unquote(text: str, raw: str) -> str:
    value, escaped = [], False
    for index, char in enumerate(raw[1:], start=1):
        if escaped:
            if char not in '"\\':
                raise SelectorError(text, f'in a quoted value, \\ escapes only " and \\, not {quoted(char)}')
            value.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            if index != len(raw) - 1:
                raise SelectorError(text, f"text after the closing quote: {quoted(raw[index + 1 :])}")
            return "".join(value)
        else:
            value.append(char)
    raise SelectorError(text, 'a quoted value needs its closing "')


def _term(text: str, column: Column, op: str, raw: str, negated: bool) -> tuple[object, _Term]:
    if op == "~":
        return raw, _regex_term(text, column, raw, negated)
    value = _convert(text, column, op, raw)
    if op == "=":
        return value, _Term("{cell} != {v}" if negated else "{cell} == {v}", value, 0)
    comparison = f"{{cell}} {op} {{v}}"
    # `not (a >= b)` rather than `a < b`: the two differ for NaN, and `!` means "not".
    return value, _Term(f"not ({comparison})" if negated else comparison, value, 0)


def _regex_term(text: str, column: Column, pattern: str, negated: bool) -> _Term:
    if column.kind is not Kind.STR:
        problem = f"~ (regular expression) needs a string column, but column {column.name} is {column.kind.value}"
        raise SelectorError(text, problem)
    try:
        compiled = re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        raise SelectorError(text, f"invalid regular expression {quoted(pattern)}: {_re2_reason(exc)}") from None
    return _Term("not {v}[{cell}]" if negated else "{v}[{cell}]", _RegexMemo(compiled.search), 1)


def _re2_reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    if isinstance(reason, bytes):  # google-re2 reports the C++ message as bytes
        reason = reason.decode("utf-8", "replace")
    return shorten(" ".join(str(reason).split()))  # RE2 may quote the whole pattern back


def _convert(text: str, column: Column, op: str, raw: str) -> object:
    kind = column.kind
    if kind is Kind.STR:
        return raw
    if kind is Kind.BOOL:
        return _to_bool(text, column, op, raw)
    if not _NUMBER.fullmatch(raw.strip()):
        raise SelectorError(text, f"{quoted(raw)} is not a number, but column {column.name} is {kind.value}")
    if kind is Kind.FLOAT:
        return float(raw)
    return _to_int_or_float(raw.strip())


def _to_int_or_float(raw: str) -> int | float:
    # `1e6` against an int column compares as the int 1000000; `1.5` stays a float.
    number = Decimal(raw)
    if number == number.to_integral_value() and number.adjusted() < 100:
        return int(number)
    return float(number)


def _to_bool(text: str, column: Column, op: str, raw: str) -> bool:
    if op != "=":
        name = column.name
        problem = f"column {name} is bool: only equality ({name}:true, {name}:!true) is allowed, not {op}"
        raise SelectorError(text, problem)
    value = _BOOLS.get(raw.strip().lower())
    if value is None:
        problem = f"{quoted(raw)} is not a boolean (use true, false, 1 or 0), but column {column.name} is bool"
        raise SelectorError(text, problem)
    return value


class _RegexMemo(dict):
    """Maps a column value to whether the regex matches it, computing misses with RE2."""

    __slots__ = ("search",)

    def __init__(self, search: Callable[[str], object]) -> None:
        super().__init__()
        self.search = search

    def __missing__(self, value: str) -> bool:
        hit = self.search(value) is not None
        if len(self) >= _MEMO_LIMIT:
            self.clear()
        self[value] = hit
        return hit


def _generate(terms: list[tuple[str, _Term]], label: str) -> Predicate:
    """Compile `lambda row: <term0> and <term1> ...` with the bindings as closure variables."""
    names = [f"v{i}" for i in range(len(terms))]
    # repr() of a str is always a valid, inert Python literal: column names cannot inject code.
    body = " and ".join(
        f"({term.template.format(cell=f'row[{column!r}]', v=name)})" for name, (column, term) in zip(names, terms)
    )
    source = f"def make({', '.join(names)}):\n    def predicate(row):\n        return {body}\n    return predicate\n"
    predicate = _maker(source)(*(term.binding for _, term in terms))
    predicate.__doc__ = label
    return predicate


@functools.lru_cache(maxsize=1024)
def _maker(source: str) -> Callable[..., Predicate]:
    # The source holds column names and operators, never values (those are bound by `make`): the
    # metrics of a large config share a few shapes, and compiling each costs as much as the rest.
    namespace: dict = {}
    exec(compile(source, "<selector>", "exec"), namespace)
    return namespace["make"]
