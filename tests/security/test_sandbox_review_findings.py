"""Findings of the second review of the sandbox: work charged for less than it costs (a modular
power, a sort of nested lists, hashing nested tuples), memory reserved for less than a split
allocates, and tenant output showing memory addresses. Each hostile case runs with the default
limits and must end in the budget's own error (never a timing); ordinary uses still render."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from templates_store.sandbox.engine import TenantEngine
from templates_store.velocity import Engine, TemplateLimitError, convert
from tests.security.corpus import telltales

MB = 1024 * 1024
TENANT = TenantEngine(autoescape=False)
TENANT_ESCAPED = TenantEngine(autoescape=True)
VELOCITY = Engine(autoescape=False)
VELOCITY_JINJA_ONLY = Engine(autoescape=False, fast_path=False)


def render_velocity(source: str, data: dict[str, Any] | None = None) -> list[str]:
    """The converted template's output, with the fast path and through Jinja alone."""
    conversion = convert(source)
    assert conversion.source is not None
    return [
        engine.render(conversion.source, data or {}) for engine in (VELOCITY, VELOCITY_JINJA_ONLY)
    ]


def refused_by_velocity(source: str, data: dict[str, Any] | None = None) -> None:
    conversion = convert(source)
    assert conversion.source is not None
    for engine in (VELOCITY, VELOCITY_JINJA_ONLY):
        with pytest.raises(TemplateLimitError):
            engine.render(conversion.source, data or {})


# -- 1. modular power --------------------------------------------------------------------------


def test_modular_pow__16000_bit_modulus__refused_by_the_step_budget() -> None:
    # Given a modular power with a 16,000-bit exponent modulo a 16,000-bit number (11 s of CPU)
    source = (
        "#set($e = 7)#set($e = $e.__pow__(5800))#set($m = $e.__add__(2))"
        "#foreach($i in [1..1])#set($x = $e.__pow__($e, $m))#end done"
    )
    # When it renders
    # Then it is charged by the exponent's bits times the modulus' size squared, and refused
    refused_by_velocity(source)


def test_modular_pow__4000_digit_integers_from_data__refused_by_the_step_budget() -> None:
    # Given the same work reached through data: two 4,000-digit integers
    a, b = int("7" * 4000), int("3" * 4000)
    # When a template raises one to the other modulo the second
    # Then it is refused before it runs
    refused_by_velocity("#set($x = $a.__pow__($b, $c))done", {"a": a, "b": b, "c": b + 2})


def test_modular_pow__small_numbers__renders_cheaply() -> None:
    # Given modular powers of two- and three-digit numbers, in a loop
    source = "#set($x = 0)#foreach($i in [1..2000])#set($x = $a.__pow__($i, 997))#end$x"
    # When it renders
    # Then it is not refused (a step or so each)
    assert render_velocity(source, {"a": 45}) == [str(pow(45, 2000, 997))] * 2


# -- 2. sorting nested lists -------------------------------------------------------------------


def test_list_sort__items_sharing_a_million_item_list__refused_by_the_step_budget() -> None:
    # Given a list of 100,000 references to one million-item list (each comparison walks it)
    source = (
        "#set($a = [0])#set($a = $a.__mul__(1000000))#set($b = [$a])"
        "#set($b = $b.__mul__(100000))#set($x = $b.sort())done"
    )
    # When it sorts it
    # Then the walk of what the comparisons compare is charged, and refused
    refused_by_velocity(source)


def test_list_contains__value_like_a_shared_million_item_list__refused_by_the_step_budget() -> None:
    # Given a list of 100,000 references to one million-item list, and a list of the same
    # length that differs from it in its last item only
    source = (
        "#set($a = [0])#set($a = $a.__mul__(1000000))#set($c = [0])#set($c = $c.__mul__(999999))"
        "#set($x = $c.add(1))#set($b = [$a])#set($b = $b.__mul__(100000))"
        "#if($b.contains($c))yes#end"
    )
    # When it searches the list for the copy
    # Then each comparison's walk is charged, and refused
    refused_by_velocity(source)


@pytest.mark.parametrize(
    "source",
    [
        # hashing a tuple walks every nested value, a million for each of the 1,000 items
        "{% set t = (0,) * 1000000 %}{% set u = (t,) * 1000 %}{{ {}.get(u) }}",
        "{% set t = (0,) * 1000000 %}{% set u = (t,) * 1000 %}{{ dict([(u, 1)])|length }}",
        "{% set t = (0,) * 1000000 %}{% set u = (t,) * 1000 %}{{ {}.fromkeys([u])|length }}",
        # the sort filter and the list method charge the same comparisons
        "{% set a = [0] * 1000000 %}{% set b = [a] * 100000 %}{{ b|sort|length }}",
    ],
)
def test_nested_tuple_key__hashed_or_compared__refused_by_the_step_budget(source: str) -> None:
    # Given a tuple holding a thousand references to a million-item tuple, used as a key
    # When a dict method hashes it
    # Then the walk of the hash is charged, and refused
    with pytest.raises(TemplateLimitError):
        TENANT.render(source, {})


def test_list_sort__ordinary_lists__render() -> None:
    # Given lists of numbers and of short lists
    source = (
        "#set($l = [3, 1, 2])#set($x = $l.sort())$l "
        "#set($m = [[2, 1], [1, 2]])#set($x = $m.sort())$m"
    )
    # When they are sorted
    # Then they are, as before
    assert render_velocity(source) == ["[1, 2, 3] [[1, 2], [2, 1]]"] * 2


# -- 3. many small objects from one text -------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        # each split makes 500,000 two-byte-wide parts (84 bytes each with their list slot)
        "{% set t = 'Ā ' * 500000 %}"
        + "".join(f"{{% set a{k} = t.split() %}}" for k in range(31))
        + "done",
        "{% set t = 'Ā\\n' * 500000 %}"
        + "".join(f"{{% set a{k} = t.splitlines() %}}" for k in range(31))
        + "done",
        "{% set t = 'Ā,' * 500000 %}"
        + "".join(f"{{% set a{k} = t.rsplit(',') %}}" for k in range(31))
        + "done",
    ],
)
def test_text_split__parts_kept__memory_reserved_before__refused_near_the_work_budget(
    source: str,
) -> None:
    # Given a template keeping 31 lists of hundreds of thousands of parts of one text
    # When it renders
    # Then each part's object and slot is reserved before the split runs: the work budget
    # refuses it having allocated about what it allows (not 1.4 GB)
    tracemalloc.start()
    try:
        with pytest.raises(TemplateLimitError):
            TENANT.render(source, {})
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 256 * MB


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ ('a b  c ' * 100000).split()|length }}", "300000"),
        ("{{ ('a,b' * 100000).split(',', 5)|length }}", "6"),
        ("{{ ('line\\r\\n' * 100000).splitlines()|length }}", "100000"),
        ("{{ 'Ā b'.split() }}", "['Ā', 'b']"),
        ("{{ 'a\\u2028b\\x85c'.splitlines() }}", "['a', 'b', 'c']"),
        ("{{ range(100000)|list|length }}", "100000"),
    ],
)
def test_text_split__ordinary_texts__render(source: str, expected: str) -> None:
    # Given ordinary splits of a text into words, fields and lines
    # When they render
    # Then the results are Python's
    assert TENANT.render(source, {}) == expected


# -- 4. no memory address in tenant output ------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ x.upper }}", "<method upper>"),
        ("{{ l.count }}", "<method count>"),
        ("{{ '%r' % (x.upper,) }}", "<method upper>"),
        ("{{ '%s'|format(x.upper) }}", "<method upper>"),
        ("{{ '{!r} {}'.format(x.upper, l.index) }}", "<method upper> <method index>"),
        ("{{ [x.upper, 'a', {'k': l.count}] }}", "[<method upper>, 'a', {'k': <method count>}]"),
        ("{{ x.upper ~ '!' }}", "<method upper>!"),
        ("{{ x.upper|string }}", "<method upper>"),
        ("{{ x.upper|urlencode }}", "%3Cmethod%20upper%3E"),
        ("{{ l|map('string') }}", "<generator>"),
        ("{{ l|reverse }}", "<list_reverseiterator>"),
        ("{{ l|batch(2) }}", "<generator>"),
    ],
)
def test_method_or_iterator__printed_by_tenant_jinja__fixed_text_without_address(
    source: str, expected: str
) -> None:
    # Given a tenant template printing a method (no parentheses) or an iterator
    # When it renders
    # Then it shows a fixed text, never Python's repr with a memory address
    data = {"x": "abc", "l": [1, 2, 3]}
    assert TENANT.render(source, data) == expected
    escaped = TENANT_ESCAPED.render(source, data)
    assert telltales(escaped, ()) == []


def test_method_of_missing_key__printed_by_converted_velocity__keeps_airspeeds_text() -> None:
    # Given a converted template printing a bound method (airspeed printed its repr)
    # When it renders
    # Then it prints Python's repr, as airspeed did (docs/templates.md, known limits)
    for output in render_velocity("$m.keys", {"m": {"a": 1}}):
        assert output.startswith("<built-in method keys of dict object at 0x")
