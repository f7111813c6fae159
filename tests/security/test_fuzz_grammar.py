"""Grammar fuzzing: Hypothesis builds templates from Jinja constructs (tenant environment) and
from Velocity constructs (converted, then the velocity engine), mixing ordinary values with
hostile ones (dunder names, huge numbers, format specs, backtracking regexes, commands that
touch the marker).

Property: every render returns a str no longer than the engine's output limit, or raises a
TemplateRenderError subclass - never another exception (MemoryError, RecursionError,
TypeError...) - with a bounded tracemalloc peak, and never creates the marker file.
Each example runs in a child process under a 20 s guard against hangs (tests/security/isolation.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.defaults import DEFAULT_FILTERS

from tests.security.checks import PEAK_BYTES, assert_ended
from tests.security.corpus import DEFAULT_DATA, build_data
from tests.security.isolation import Job, Outcome, run_isolated

# Sized so that the file runs in about a minute (each example forks a child).
JINJA_EXAMPLES = 100
VELOCITY_EXAMPLES = 60
_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large]

HOSTILE_NAMES = [
    "__class__",
    "__mro__",
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__init__",
    "__dict__",
    "__base__",
    "__call__",
    "__code__",
    "__self__",
    "__func__",
    "__import__",
    "_TemplateReference__context",
    "gi_frame",
    "gi_code",
    "f_globals",
    "f_back",
    "co_consts",
    "mro",
    "func_globals",
    "os",
    "popen",
    "system",
    "environ",
    "read",
]
STRING_METHODS = [
    "upper",
    "lower",
    "strip",
    "split",
    "join",
    "replace",
    "format",
    "format_map",
    "center",
    "ljust",
    "rjust",
    "zfill",
    "expandtabs",
    "startswith",
    "encode",
    "title",
    "count",
    "find",
]
COLLECTION_METHODS = ["items", "keys", "values", "get", "append", "pop", "update", "index", "copy"]
NAMES = ["x", "s", "n", "items", "obj", "cmd", "missing", "v", "t", "a", "ns", "loop", "self"]
GLOBALS = ["range", "namespace", "dict", "lipsum", "cycler", "joiner", "caller"]

INTEGERS = st.sampled_from(["0", "1", "2", "3", "7", "40", "-1", "1000", "1000000", "1000000000"])
STRINGS = st.sampled_from(
    [
        "''",
        "'a'",
        "' '",
        "','",
        "'{0.__class__}'",
        "'{0:>{1}}'",
        "'{:>500000000}'",
        "'%s'",
        "'%*s'",
        "'%500000000s'",
        "'__class__'",
        "'(a+)+$'",
        "'" + "a" * 30 + "!'",
        "'touch @MARKER@'",
        "'@MARKER@'",
        "'\\x5f\\x5fclass\\x5f\\x5f'",
    ]
)
JINJA_OPERATORS = st.sampled_from(
    ["+", "-", "*", "**", "/", "//", "%", "~", "==", "<", "and", "in"]
)


def _jinja_expressions() -> st.SearchStrategy[str]:
    atoms = st.one_of(
        INTEGERS,
        STRINGS,
        st.sampled_from(NAMES + GLOBALS),
        st.just("[1, 2, 3]"),
        st.just("{'a': 1}"),
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        arguments = st.lists(inner, max_size=3).map(", ".join)
        return st.one_of(
            st.tuples(inner, st.sampled_from(HOSTILE_NAMES + STRING_METHODS)).map(
                lambda t: f"{t[0]}.{t[1]}"
            ),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
            st.tuples(inner, arguments).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(inner, st.sampled_from(STRING_METHODS + COLLECTION_METHODS), arguments).map(
                lambda t: f"{t[0]}.{t[1]}({t[2]})"
            ),
            st.tuples(inner, st.sampled_from(sorted(DEFAULT_FILTERS)), arguments).map(
                lambda t: f"({t[0]}|{t[1]}({t[2]}))"
            ),
            st.tuples(inner, st.sampled_from(HOSTILE_NAMES)).map(
                lambda t: f"({t[0]}|attr('{t[1]}'))"
            ),
            st.tuples(inner, JINJA_OPERATORS, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, INTEGERS, INTEGERS).map(lambda t: f"{t[0]}[{t[1]}:{t[2]}]"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
            st.tuples(inner, INTEGERS).map(lambda t: f"namespace(v={t[0]}, n={t[1]})"),
        )

    return st.recursive(atoms, extend, max_leaves=6)


def _jinja_templates() -> st.SearchStrategy[str]:
    expression = _jinja_expressions()
    leaf = st.one_of(
        expression.map(lambda e: "{{ " + e + " }}"),
        expression.map(lambda e: "{% set t = " + e + " %}"),
        expression.map(lambda e: "{% set ns = namespace(v=" + e + ") %}"),
        expression.map(lambda e: "{% set ns.v = ns.v ~ " + e + " %}"),
        # a value fed back into itself: doubling, squaring... inside loops
        JINJA_OPERATORS.map(lambda op: "{% set ns.v = (ns.v " + op + " ns.v) %}"),
        st.sampled_from(["text ", "\n", "{{ ns.v }}"]),
    )

    def extend(body: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(expression, body).map(
                lambda t: "{% for v in " + t[0] + " %}" + t[1] + "{% endfor %}"
            ),
            st.tuples(INTEGERS, body).map(
                lambda t: "{% for v in range(" + t[0] + ") %}" + t[1] + "{% endfor %}"
            ),
            st.tuples(expression, body, body).map(
                lambda t: "{% if " + t[0] + " %}" + t[1] + "{% else %}" + t[2] + "{% endif %}"
            ),
            st.tuples(body, expression).map(
                lambda t: "{% macro m(a) %}" + t[0] + "{% endmacro %}{{ m(" + t[1] + ") }}"
            ),
            st.tuples(body, body).map(
                lambda t: (
                    "{% macro m() %}" + t[0] + "{{ caller() }}{% endmacro %}"
                    "{% call m() %}" + t[1] + "{% endcall %}"
                )
            ),
            st.tuples(body, expression).map(
                lambda t: (
                    "{% macro f(a) %}" + t[0] + "{{ f(a) }}{% endmacro %}{{ f(" + t[1] + ") }}"
                )
            ),
            st.lists(body, min_size=2, max_size=3).map("".join),
        )

    statements = st.recursive(leaf, extend, max_leaves=5)
    # `ns.v` starts as a plain value, so that feeding it back into itself means something
    start = st.one_of(INTEGERS, STRINGS, st.just("[1]")).map(
        lambda v: "{% set ns = namespace(v=" + v + ") %}"
    )
    return st.tuples(start, st.lists(statements, min_size=1, max_size=4)).map(
        lambda t: t[0] + "".join(t[1])
    )


VELOCITY_NAMES = ["x", "s", "n", "items", "obj", "cmd", "missing", "v", "t", "a", "class", "d"]
VELOCITY_MEMBERS = [
    "length()",
    "size()",
    "toUpperCase()",
    "upper()",
    "keySet()",
    "get(0)",
    "get('a')",
    "isEmpty()",
    "contains('a')",
    "startsWith('a')",
    "split(',')",
    "replace('a', 'bb')",
    "replace('', $s)",
    "matches('(a+)+$')",
    "replaceAll('(a|aa)+$', 'x')",
    "format('{0.__class__}')",
    "format('{0:>{1}}', 'a', 500000000)",
    "center(1000000000)",
    "zfill(1000000000)",
    "add($x)",
    "put('k', $x)",
    "getClass()",
    "getClass().forName('java.lang.Runtime').getRuntime().exec('touch @MARKER@')",
] + HOSTILE_NAMES


def _velocity_templates() -> st.SearchStrategy[str]:
    name = st.sampled_from(VELOCITY_NAMES)
    reference = st.one_of(
        name.map(lambda n: f"${n}"),
        name.map(lambda n: "${" + n + "}"),
        name.map(lambda n: f"$!{n}"),
        st.tuples(name, st.lists(st.sampled_from(VELOCITY_MEMBERS), min_size=1, max_size=3)).map(
            lambda t: "$" + t[0] + "".join("." + m for m in t[1])
        ),
        st.tuples(name, st.sampled_from(["0", "1", "'a'"])).map(lambda t: f"${t[0]}[{t[1]}]"),
    )
    atoms = st.one_of(
        reference,
        INTEGERS,
        STRINGS,
        st.tuples(reference, reference).map(lambda t: f'"{t[0]} and {t[1]}"'),
        st.tuples(INTEGERS, INTEGERS).map(lambda t: f"[{t[0]}..{t[1]}]"),
    )

    def extend_values(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
            inner.map(lambda v: "{'k': " + v + "}"),
        )

    value = st.recursive(atoms, extend_values, max_leaves=4)
    leaf = st.one_of(
        reference,
        st.sampled_from(["text ", "\n", "#stop", "## comment\n"]),
        st.tuples(name, value).map(lambda t: f"#set(${t[0]} = {t[1]})"),
        # a value fed back into itself: doubling, squaring... inside loops
        st.sampled_from(["$t * $t", "$t + $t", '"$t$t"', "[$t, $t]"]).map(
            lambda v: f"#set($t = {v})"
        ),
        value.map(lambda v: f"#evaluate({v})"),
        st.just("#set($t = '#evaluate($t)')#evaluate($t)"),
    )

    def extend(body: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(value, body).map(lambda t: f"#foreach($v in {t[0]}){t[1]}#end"),
            st.tuples(INTEGERS, body).map(lambda t: f"#foreach($v in [1..{t[0]}]){t[1]}#end"),
            st.tuples(value, body, body).map(lambda t: f"#if({t[0]}){t[1]}#else{t[2]}#end"),
            st.tuples(body, value).map(lambda t: f"#macro(m $a){t[0]}#end#m({t[1]})"),
            st.tuples(body, value).map(lambda t: f"#macro(f $a){t[0]}#f($a)#f($a)#end#f({t[1]})"),
            body.map(lambda b: f"#define($d){b}#end$d$d"),
            st.lists(body, min_size=2, max_size=3).map("".join),
        )

    statements = st.recursive(leaf, extend, max_leaves=5)
    # `$t` starts as a plain value, so that feeding it back into itself means something
    start = st.one_of(INTEGERS, STRINGS, st.just("[1]")).map(lambda v: f"#set($t = {v})")
    return st.tuples(start, st.lists(statements, min_size=1, max_size=4)).map(
        lambda t: t[0] + "".join(t[1])
    )


@pytest.fixture(scope="module")
def fuzz_marker(tmp_path_factory) -> Path:  # noqa: ANN001
    return tmp_path_factory.mktemp("fuzz") / "marker"


def assert_property(outcome: Outcome, marker: Path) -> None:
    assert not marker.exists(), "a generated template ran code: " + outcome.describe()
    assert_ended(outcome)
    if outcome.status == "returned":
        assert outcome.length <= outcome.max_output_chars, outcome.describe()
    elif outcome.status == "raised":
        assert outcome.render_error, "an error outside the contract: " + outcome.describe()
    assert outcome.peak_bytes < PEAK_BYTES, outcome.describe()


@settings(max_examples=JINJA_EXAMPLES, deadline=None, suppress_health_check=_SUPPRESSED)
@given(source=_jinja_templates(), autoescape=st.booleans())
def test_generated_jinja__tenant_engine__bounded_text_or_engine_error(
    source, autoescape, fuzz_marker
):
    # Given a template built from Jinja's grammar, hostile names and values mixed in
    job = Job(
        source=source.replace("@MARKER@", str(fuzz_marker)),
        data=build_data(DEFAULT_DATA, fuzz_marker),
        env="jinja2",
        autoescape=autoescape,
        measure_memory=True,
    )
    # When the tenant engine compiles and renders it
    outcome = run_isolated(job)
    # Then it answers text within the output limit or the engine's own error, in bounded memory
    assert_property(outcome, fuzz_marker)


@settings(max_examples=VELOCITY_EXAMPLES, deadline=None, suppress_health_check=_SUPPRESSED)
@given(source=_velocity_templates())
def test_generated_velocity__converted_and_rendered__bounded_text_or_engine_error(
    source, fuzz_marker
):
    # Given a Velocity template built from its grammar, hostile members and values mixed in
    job = Job(
        source=source.replace("@MARKER@", str(fuzz_marker)),
        data=build_data(DEFAULT_DATA, fuzz_marker),
        env="velocity",
        velocity_source=True,
        measure_memory=True,
    )
    # When it is converted and the conversion rendered by the velocity engine
    outcome = run_isolated(job)
    # Then it answers text within the output limit or the engine's own error, in bounded memory
    assert_property(outcome, fuzz_marker)
