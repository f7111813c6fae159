"""The fast path (fastpath.py: the Jinja tree compiled to a plain function) renders exactly
what Jinja renders, raises where Jinja raises, and keeps the sandbox and the limits."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from templates_store.velocity import (
    Engine,
    RenderLimits,
    TemplateLimitError,
    TemplateRenderError,
    TemplateSecurityError,
    convert,
)

from .helpers import RUNAWAY_VELOCITY, jinja_only, load_jsonl, normalise
from .test_hypothesis import blocks, datas

ENGINE = Engine(autoescape=False)
LIMITED = Engine(
    autoescape=False, limits=RenderLimits(max_output_chars=100_000, max_loop_iterations=10_000)
)
TEMPLATES = {t["tpl_id"]: t for t in load_jsonl("templates.jsonl")}
SAMPLES = load_jsonl("samples.jsonl")


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        return normalise(("ok", call()))
    except TemplateRenderError as exc:
        return "error", type(exc).__name__


def _both(engine: Engine, source: str, data: dict[str, Any]) -> tuple[Any, Any]:
    """(fast path alone, Jinja path alone) outcomes; the public render with the fast path on
    and with it off must each give Jinja's."""
    compiled = engine.compile(source)
    fast = _outcome(lambda: engine._render_fast(source, copy.deepcopy(data)))
    jinja = _outcome(lambda: engine._render_jinja(compiled, copy.deepcopy(data)))
    public = _outcome(lambda: engine.render(source, copy.deepcopy(data)))
    assert public == jinja, (source, data)
    off = jinja_only(engine)
    assert off.compile(source).fast is None
    assert _outcome(lambda: off.render(source, copy.deepcopy(data))) == jinja, (source, data)
    return fast, jinja


def _sources(sample: dict[str, Any]) -> list[str]:
    template = TEMPLATES[sample["tpl_id"]]
    return [
        convert(template[field]).source
        for field in ("subject", "content")
        if template.get(field) and convert(template[field]).source is not None
    ]


def test_legacy_templates__compiled__all_have_a_fast_path() -> None:
    # Given every converted legacy template
    sources = {s for sample in SAMPLES if sample["tpl_id"] in TEMPLATES for s in _sources(sample)}
    # When compiled
    missing = [s for s in sources if ENGINE.compile(s).fast is None]
    # Then each one gets the fast path (the benchmark measures it)
    assert sources
    assert not missing, missing[0]


@pytest.mark.parametrize(
    "sample",
    [s for s in SAMPLES if s["tpl_id"] in TEMPLATES],
    ids=lambda s: f"{s['tpl_id']}",
)
def test_legacy_sample__fast_path__equals_jinja_path(sample: dict) -> None:
    # Given a legacy template converted, and one of its samples
    for source in _sources(sample):
        # When rendered by the fast path and by Jinja's code
        fast, jinja = _both(ENGINE, source, sample["params"])
        # Then both give the same text (or fail with the same error class)
        assert fast == jinja


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=blocks(), cases=st.lists(datas, min_size=1, max_size=3))
def test_random_template__fast_path__equals_jinja_path(template: str, cases: list) -> None:
    # Given a random Velocity template, converted
    source = convert(template).source
    # (only templates with a fast path count: if none had one, Hypothesis fails the test)
    assume(source is not None and ENGINE.compile(source).fast is not None)
    for data in cases:
        # When rendered by the fast path and by Jinja's code
        fast, jinja = _both(ENGINE, source, data)
        # Then both agree
        assert fast == jinja, (source, data)


def test_random_templates__compiled__mostly_fast() -> None:
    # Given the constructs the converter emits (sets, loops, macros, defines, strings)
    velocity = [
        "#set($a = $n + 1)$a",
        "#foreach($i in $l)$i $velocityCount#end",
        "#macro(m $x)[$x]#end#m('a')#m($n)",
        '#define($d)D$n#end$d "in $s"',
        "#if($n > 1)big#elseif($n)one#else none#end",
        "${s|'dflt'} $!x $s.upper() $l.size() $l[0] ${d.k}",
    ]
    # When compiled
    # Then each has the fast path
    for text in velocity:
        assert ENGINE.compile(convert(text).source).fast is not None, text


@pytest.mark.parametrize(
    "velocity",
    [
        "$s.__class__",
        "$s.__class__.__mro__",
        "${s.__init__}",
        "#set($f = '{0.__class__}')$f.format($s)",
        "#set($m = $s.__class__)$m",
        "#foreach($i in [1..2])$s.__class__#end",
        "#macro(m $x)$x.__class__#end#m($s)",
    ],
)
def test_velocity_payload__fast_path__raises_security_error(velocity: str) -> None:
    # Given a legacy template reaching Python internals, compiled to the fast path
    source = convert(velocity).source
    assert ENGINE.compile(source).fast is not None
    # When the fast path alone renders it
    # Then the sandbox refuses it, as through Jinja (and through the public render)
    with pytest.raises(TemplateSecurityError):
        ENGINE._render_fast(source, {"s": "x"})
    with pytest.raises(TemplateSecurityError):
        ENGINE.render(source, {"s": "x"})


@pytest.mark.parametrize(
    "velocity",
    [
        *RUNAWAY_VELOCITY,
        "#foreach($i in [1..9000])$big#end",
        "#set($s = $big)#foreach($i in [1..9000])$s#end",
        "#macro(m $x)$x$x$x$x#end#foreach($i in [1..5000])#m($big)#end",
        "#set($t = $n * 99999999)#set($u = $s * $t)",
    ],
)
def test_velocity_runaway__fast_path__raises_limit_error(velocity: str) -> None:
    # Given a legacy template that never ends or explodes, compiled to the fast path
    source = convert(velocity).source
    assert LIMITED.compile(source).fast is not None
    data = {"l": [1], "s": "x", "big": "y" * 50, "n": 3}
    # When the fast path alone renders it
    # Then a limit stops it, as through Jinja (and through the public render)
    with pytest.raises(TemplateLimitError):
        LIMITED._render_fast(source, data)
    with pytest.raises(TemplateLimitError):
        LIMITED.render(source, data)


def test_output_limit__fast_path__checked_during_loops() -> None:
    # Given a loop whose output passes the limit long before it ends
    source = convert("#foreach($i in [1..9000])$big#end").source
    engine = Engine(
        autoescape=False, limits=RenderLimits(max_output_chars=1_000, max_loop_iterations=10_000)
    )
    # When the fast path renders it
    # Then it stops at the limit
    with pytest.raises(TemplateLimitError):
        engine._render_fast(source, {"big": "z" * 100})


@pytest.mark.parametrize(
    "source",
    [
        "{{ x.y }}",  # Jinja's own attribute access: never produced by the converter
        "{{ x['y'] }}",
        "{{ f() }}",
        "{{ x|upper }}",  # a filter that is not one of the helpers
        "{% for i in range(3) %}{{ loop.index }}{% endfor %}",
    ],
)
def test_construct_the_converter_never_writes__compile__refused(source: str) -> None:
    # Given Jinja that only a hand-written template would hold
    # When compiled in the converted-template environment
    # Then it is refused: values are reached through the helpers only
    with pytest.raises(TemplateRenderError):
        ENGINE.compile(source)


@pytest.mark.parametrize(
    "source",
    [
        "{% if c %}{% set y = 1 %}{% endif %}{{ y }}",  # maybe unbound
        "{% set _v = _vdata %}{{ y }}",  # not a template variable of converted templates
        "{% set _v = _vdata %}{% for i in _v|vfor('i', [1]) %}{{ _v2 }}{% set _v2 = 1 %}"
        "{% endfor %}",
        "{% set _o = _vdata %}{% macro m(_v) %}{{ _o|vn('x') }}{% endmacro %}",
        "{% macro m(_v, w) %}{% endmacro %}",
        "{% set _v = _vdata %}{{ _v|vstop }}",
        "{% set _v = _vdata %}{{ _v|vn(1e999) }}",  # Jinja writes `inf`: a NameError
    ],
)
def test_unsupported_construct__compile__keeps_jinja(source: str) -> None:
    # Given a template using something the fast path does not compile
    # When compiled
    # Then it renders through Jinja only
    assert ENGINE.compile(source).fast is None


def test_autoescape_engine__compile__keeps_jinja() -> None:
    # Given an engine escaping HTML
    engine = Engine(autoescape=True)
    # When a converted template is compiled
    # Then Jinja renders it (the fast path writes unescaped text only)
    assert engine.compile(convert("$a").source).fast is None
    assert engine.render(convert("$a").source, {"a": "<b>"}) == "&lt;b&gt;"


def test_non_dict_data__render__falls_back_to_jinja() -> None:
    # Given data that is a mapping but not a plain dict
    class Mapping(dict):
        pass

    source = convert("$a ${b.c}").source
    # When rendered
    # Then the output is Jinja's
    data = Mapping(a="1", b={"c": "2"})
    assert ENGINE.render(source, data) == ENGINE._render_jinja(ENGINE.compile(source), data)
    assert ENGINE.render(source, data) == "1 2"


def test_fast_path_error__render__is_jinjas_error() -> None:
    # Given a template failing at render time
    source = convert("#set($x = $n / 0)$x").source
    # When rendered
    # Then the error is the one Jinja's code raises (same class and message)
    with pytest.raises(TemplateRenderError) as fast_error:
        ENGINE.render(source, {"n": 1})
    with pytest.raises(TemplateRenderError) as jinja_error:
        ENGINE._render_jinja(ENGINE.compile(source), {"n": 1})
    assert type(fast_error.value) is type(jinja_error.value)
    assert str(fast_error.value) == str(jinja_error.value)


def test_generated_code__template_text__never_spliced() -> None:
    # Given a template whose text and names look like Python code
    velocity = "\"); import os #{x}\n$a.b('); os.system(1) #')#set($c = '\\' + 1')$c"
    source = convert(velocity).source
    fast = ENGINE.compile(source).fast
    # When compiled
    # Then the generated code holds no template text (constants are referenced by name)
    assert fast is not None
    code = fast.__fast_source__
    for fragment in ("import", "os.system", "')", "#{x}"):
        assert fragment not in code
    assert ENGINE.render(source, {"a": {"b": None}}) == ENGINE._render_jinja(
        ENGINE.compile(source), {"a": {"b": None}}
    )


def test_scoping__loop_and_if_sets__as_jinja() -> None:
    # Given Jinja scoping rules (loop bodies scope their sets, `if` does not)
    source = (
        "{% set _v = _vdata %}{% set t = 'a' %}"
        "{% for i in _v|vfor('i', [1, 2]) %}{% set t = 'b' %}{{ t }}{% endfor %}{{ t }}"
        "{% if _v|vn('c') %}{% set t = 'c' %}{% else %}{% set t = 'd' %}{% endif %}{{ t }}"
    )
    # When rendered both ways
    # Then the same variables are seen
    assert ENGINE.compile(source).fast is not None
    for data in ({"c": 1}, {"c": 0}):
        fast, jinja = _both(ENGINE, source, data)
        assert fast == jinja
        assert fast[0] == "ok"
