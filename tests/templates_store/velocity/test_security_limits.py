"""Sandbox escapes fail with TemplateSecurityError; runaway templates with TemplateLimitError."""

from __future__ import annotations

import pytest

from templates_store.sandbox.engine import TenantEngine
from templates_store.velocity import (
    Engine,
    RenderLimits,
    TemplateLimitError,
    TemplateSecurityError,
    TemplateSyntaxError,
    convert,
)

from .helpers import RUNAWAY_VELOCITY

LIMITS = RenderLimits(max_output_chars=100_000, max_loop_iterations=10_000)
# tenant-authored Jinja
TENANT = TenantEngine(autoescape=True, limits=LIMITS)
# converted legacy templates
ENGINE = Engine(limits=LIMITS)

SSTI_JINJA = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__dict__ }}",
    "{{ range.__globals__ }}",
    "{{ ''['__class__'] }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ x.__class__ }}",
    "{{ (x|attr('__class__')) }}",
]


@pytest.mark.parametrize("source", SSTI_JINJA)
def test_jinja_payload__sandbox__raises_security_error(source: str) -> None:
    # Given a template written to escape the sandbox
    # When it renders
    # Then our security error is raised, nothing is executed or printed
    with pytest.raises(TemplateSecurityError):
        TENANT.render(source, {"x": "v"})


@pytest.mark.parametrize(
    "velocity",
    [
        "$s.__class__",
        "$s.__class__.__mro__",
        "${s.__init__}",
        "#set($f = '{0.__class__}')$f.format($s)",
    ],
)
def test_velocity_payload__converted__raises_security_error(velocity: str) -> None:
    # Given a legacy template that reaches Python internals
    conversion = convert(velocity)
    # When the converted template renders
    # Then the sandbox refuses it
    with pytest.raises(TemplateSecurityError):
        Engine().render(conversion.source, {"s": "x"})


def test_velocity_payload__dunder__flagged_needs_review() -> None:
    # Given a legacy template that reads a dunder attribute (legacy rendered it)
    # When converted
    conversion = convert("$s.__class__")
    # Then the difference is reported, not silent
    assert conversion.status == "needs_review"
    assert "unsafe_name" in {issue.construct for issue in conversion.issues}


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(10**12) %}x{% endfor %}",
        "{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}",
        "{{ 'x' * 10**9 }}",
        "{{ 'x'.center(10**9) }}",
        "{{ 'x'|center(10**9) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '%999999999d' % 1 }}",
        "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "{% for i in range(9000) %}{{ 'y' * 50 }}{% endfor %}",
    ],
)
def test_jinja_runaway__limits__raises_limit_error(source: str) -> None:
    # Given a template that would loop forever, exhaust memory or explode its output
    # When it renders
    # Then a limit stops it
    with pytest.raises(TemplateLimitError):
        TENANT.render(source, {})


@pytest.mark.parametrize("velocity", RUNAWAY_VELOCITY)
def test_velocity_runaway__converted__raises_limit_error(velocity: str) -> None:
    # Given a legacy template that never ends or explodes
    source = convert(velocity).source
    # When it renders
    # Then a limit stops it
    with pytest.raises(TemplateLimitError):
        ENGINE.render(source, {"l": [1], "s": "x"})


def test_output_limit__large_but_bounded__passes() -> None:
    # Given a loop well inside the limits
    # When it renders
    output = TENANT.render("{% for i in range(100) %}ab{% endfor %}", {})
    # Then the output is complete
    assert output == "ab" * 100


def test_jinja_syntax_error__compile__reports_line() -> None:
    # Given a broken Jinja template on its second line
    # When compiled
    with pytest.raises(TemplateSyntaxError) as info:
        TENANT.compile("ok\n{% if %}")
    # Then our error carries the line number
    assert info.value.lineno == 2


def test_autoescape__flag__escapes_only_when_on() -> None:
    # Given one template and an HTML-ish value
    source = "<b>{{ v }}</b>"
    # When rendered with autoescape on and off
    on = TenantEngine(autoescape=True).render(source, {"v": "<i>&"})
    off = TenantEngine(autoescape=False).render(source, {"v": "<i>&"})
    # Then only the autoescaped render escapes the value
    assert on == "<b>&lt;i&gt;&amp;</b>"
    assert off == "<b><i>&</b>"


def test_constant_filter__compile__evaluates_nothing() -> None:
    # Given a template whose constant filter call would build a huge string
    source = "{{ 'a'|center(50000000) }}"
    # When compiled (Jinja's optimizer would evaluate constant filters)
    code = TenantEngine().environment.compile(source, raw=True)
    # Then the filter is called by the render, not folded into the code, and refused there
    assert "a" * 1000 not in code
    assert "center" in code
    with pytest.raises(TemplateLimitError):
        TENANT.render(source, {})


@pytest.mark.parametrize(
    "source",
    [
        "{{ _vdata|vn('l') | vc('append', [3]) }}",
        "{{ _vdata|vn('l')|vc(name, [3]) }}",  # the method named by the data
        "{% if 1 %}{{ _vdata|vc('clear', []) }}{% endif %}",
    ],
)
def test_mutating_helper__any_spelling__render_works_on_a_copy(source: str) -> None:
    # Given a template calling a helper that changes its data, however it is written
    compiled = ENGINE.compile(source)
    data = {"l": [1, 2], "name": "append"}
    # When rendered (the helper runs: Velocity prints a void method's result as "None")
    output = ENGINE.render(source, data)
    # Then the engine knew, and the change was made to a copy, not to the caller's data
    assert compiled.mutates
    assert output == "None"
    assert data == {"l": [1, 2], "name": "append"}


def test_output_limit__without_loop__checked_on_the_whole_text() -> None:
    # Given a loop-free converted template whose output exceeds the limit
    engine = Engine(limits=RenderLimits(max_output_chars=50))
    source = convert("$a$a$a").source
    # When rendered
    # Then it fails on the limit
    with pytest.raises(TemplateLimitError):
        engine.render(source, {"a": "x" * 20})
    assert engine.render(source, {"a": "x" * 10}) == "x" * 30
