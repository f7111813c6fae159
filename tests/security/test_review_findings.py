"""Findings of the review of the sandbox's budgets (after the red team): work a template could
do, or memory it could hold, beyond what its budget counted. Each case runs with the default
limits and must end in the budget's own error; memory cases also measure what the render
allocated at its peak (tracemalloc), which must stay near the work budget (64 MB), not reach
gigabytes."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from templates_store.sandbox.engine import TenantEngine
from templates_store.velocity import Engine, TemplateLimitError, convert

MB = 1024 * 1024
TENANT = TenantEngine(autoescape=False)
VELOCITY = Engine(autoescape=False)
VELOCITY_JINJA_ONLY = Engine(autoescape=False, fast_path=False)


def render(kind: str, source: str, data: dict[str, Any] | None = None) -> str:
    if kind == "jinja2":
        return TENANT.render(source, data or {})
    conversion = convert(source)
    assert conversion.source is not None
    return VELOCITY.render(conversion.source, data or {})


def peak_while_refused(kind: str, source: str) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(TemplateLimitError):
            render(kind, source)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize(
    ("kind", "source"),
    [
        # collections kept: an entry or a slot is counted by the memory it takes
        (
            "jinja2",
            "{% set ns = namespace(l=[]) %}{% for i in range(120) %}"
            "{% set ns.l = ns.l + [{}.fromkeys(range(199999))] %}{% endfor %}",
        ),
        (
            "jinja2",
            "{% set ns = namespace(l=[]) %}{% for i in range(60) %}"
            "{% set ns.l = ns.l + [[i] * 999999] %}{% endfor %}",
        ),
        (
            "velocity",
            "#set($a = [])#set($d = {})#foreach($i in [1..60])"
            "#set($x = $a.add($d.fromkeys([1..199999])))#end",
        ),
    ],
)
def test_collections_kept__each_counted_by_its_memory__refused_near_the_work_budget(
    kind: str, source: str
) -> None:
    # Given a template that keeps building large lists or dicts (gigabytes, counted as items)
    # When it renders
    # Then the work budget refuses it, having allocated about what the budget allows
    assert peak_while_refused(kind, source) < 256 * MB


@pytest.mark.parametrize(
    ("kind", "source"),
    [
        # comparing dict views walks every key
        (
            "jinja2",
            "{% set d = {}.fromkeys(range(199999)) %}"
            "{% for i in range(3000) %}{% if d.keys() == d.keys() %}{% endif %}{% endfor %}",
        ),
        (
            "jinja2",
            "{% set d = {}.fromkeys(range(199999)) %}"
            "{% for i in range(3000) %}{% if d.items() == d.items() %}{% endif %}{% endfor %}",
        ),
        (
            "velocity",
            "#set($d = {})#set($M = $d.fromkeys([1..99999]))"
            "#foreach($i in [1..3000])#if($M.keySet() == $M.keySet())#end#end",
        ),
        # filters whose cost grows with their input's length
        (
            "jinja2",
            "{% set s = 'a. ' * 80000 %}{% for i in range(1000) %}{% if s|urlize %}{% endif %}"
            "{% endfor %}",
        ),
        (
            "jinja2",
            "{% set s = 'a ' * 450000 %}{% for i in range(1000) %}{% if s|title %}{% endif %}"
            "{% endfor %}",
        ),
        (
            "jinja2",
            "{% set s = '<b>x</b> ' * 100000 %}{% for i in range(1000) %}"
            "{% if s|safe|striptags %}{% endif %}{% endfor %}",
        ),
        (
            "jinja2",
            "{% set s = 'a' * 999999 %}{% for i in range(2000) %}{% if s|int(0) %}{% endif %}"
            "{% endfor %}",
        ),
        (
            "jinja2",
            "{% set s = '9' * 4299 %}{% for i in range(20000) %}{% if s|int %}{% endif %}"
            "{% endfor %}",
        ),
        (
            "jinja2",
            "{% set l = range(199999)|list %}{% for i in range(300) %}"
            "{% if l|batch(199999)|first %}{% endif %}{% endfor %}",
        ),
        # entries hashed and stored one by one
        (
            "velocity",
            "#set($d = {})#set($M = $d.fromkeys([1..99999]))#set($N = {})"
            "#foreach($i in [1..3000])#set($x = $N.putAll($M))#end",
        ),
    ],
)
def test_work_proportional_to_input__charged__refused_by_the_budget(kind: str, source: str) -> None:
    # Given a loop repeating an operation whose work grows with the size of its input
    # When it renders
    # Then the budget (steps or work) refuses it: it was charged for what it scans
    with pytest.raises(TemplateLimitError):
        render(kind, source)


@pytest.mark.parametrize("method", ["upper", "casefold", "title"])
def test_text_method__text_past_64_characters__charged_by_the_methods_check(method: str) -> None:
    # Given a 4,095-character non-ASCII text and a loop calling one of its methods 99,000 times
    source = f"#foreach($i in [1..99000])#set($z = $u.{method}())#end"
    data = {"u": "\u00df\u0130 " * 1365}
    # When it renders, with the fast path and through Jinja alone
    # Then both count the method's work and stop it
    for engine in (VELOCITY, VELOCITY_JINJA_ONLY):
        with pytest.raises(TemplateLimitError):
            engine.render(convert(source).source, data)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # measuring text is not parsing it: no charge that grows with the square of its length
        ("{% set s = 'a' * 999999 %}{{ s|length }}", "999999"),
        ("{% set s = 'a' * 999999 %}{{ s|first }}{{ s|last }}", "aa"),
        # a pass at C speed over a long text stays cheap
        ("{% set s = 'A' * 400000 %}{{ s|lower|trim|length }}", "400000"),
        ("{% set s = 'a' * 300000 %}{{ s|upper|length }}", "300000"),
    ],
)
def test_long_text__measured_or_passed_over_once__renders_within_the_budget(
    source: str, expected: str
) -> None:
    # Given a template that measures or lower-cases a long text once
    # When it renders
    # Then it is not refused: only parsing and regular expressions cost by the character
    assert render("jinja2", source) == expected


@pytest.mark.parametrize(
    "source",
    [
        # pairs given as a list are stored as surely as a mapping's entries
        "#set($s = 'a')#foreach($i in [1..19])#set($s = \"$s$s\")#end#set($m = {})"
        "#foreach($i in [1..2000])#set($x = $m.update([[$i, $s]]))#end",
        "#set($s = 'a')#foreach($i in [1..19])#set($s = \"$s$s\")#end#set($m = {})"
        "#foreach($i in [1..2000])#set($x = $m.putAll([[$i, $s]]))#end",
    ],
)
def test_map_filled_from_pairs__what_it_holds_counted__refused(source: str) -> None:
    # Given a map filled, entry by entry, with a 1 MB text from a list of pairs
    # When it renders
    # Then the stored size is charged as for a mapping, and the budget refuses it
    with pytest.raises(TemplateLimitError):
        render("velocity", source)


def test_map_entry_overwritten__not_charged_again__renders() -> None:
    # Given the same entry of a map set to a long text 2,000 times (as a variable may be)
    source = (
        "#set($s = 'a')#foreach($i in [1..19])#set($s = \"$s$s\")#end#set($m = {})"
        "#foreach($i in [1..2000])#set($m.k = $s)#end$m.k.length()"
    )
    # When it renders
    # Then it is not refused: an overwrite releases what the entry held
    assert render("velocity", source) == str(2**19)
