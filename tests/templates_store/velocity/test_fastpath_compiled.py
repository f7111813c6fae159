"""The fast path's compiled forms (loops without namespaces, inlined macros and methods,
renders that set their budget themselves) render exactly what Jinja renders, raise where
Jinja raises, and keep the limits."""

from __future__ import annotations

import ast
import contextlib
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
    runtime,
)

from .helpers import jinja_only, normalise
from .test_hypothesis import datas

ENGINE = Engine(autoescape=False)
LIMITED = Engine(
    autoescape=False, limits=RenderLimits(max_output_chars=1_000, max_loop_iterations=200)
)


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        return normalise(("ok", call()))
    except TemplateRenderError as exc:
        return "error", type(exc).__name__


def _both(engine: Engine, source: str, data: dict[str, Any]) -> tuple[Any, Any]:
    """(fast path alone, Jinja path alone) outcomes; the public render with the fast path on
    and with it off must each give Jinja's."""
    compiled = engine.compile(source)
    assert compiled.fast is not None, source
    fast = _outcome(lambda: engine._render_fast(source, copy.deepcopy(data)))
    jinja = _outcome(lambda: engine._render_jinja(compiled, copy.deepcopy(data)))
    public = _outcome(lambda: engine.render(source, copy.deepcopy(data)))
    assert public == jinja, (source, data)
    off = jinja_only(engine)
    assert off.compile(source).fast is None
    assert _outcome(lambda: off.render(source, copy.deepcopy(data))) == jinja, (source, data)
    return fast, jinja


def _code(velocity: str, engine: Engine = ENGINE) -> str:
    return engine.compile(convert(velocity).source).fast.__fast_source__


DATA = [
    {},
    {"l": ["a", None, 3], "s": " Ab ", "n": 2, "d": {"k": "v", "get": None}},
    {"l": [{"k": "x", "n": 1}, {"k": None}, {}], "s": "x", "n": 0.5, "d": {"k": 1}},
    {"l": {"k": 1, "x": 2}, "s": "", "n": None, "d": {"get": "g", "k": [1]}},
    {"l": "ab", "s": 1, "n": True, "d": [1, 2], "k": "k"},
    {"l": [[1], {"k": {"k": 2}}], "s": ["s"], "n": -3, "d": {"k": {"x": "y"}}, "k": ["u"]},
    {"l": None, "s": None, "d": None, "#m": 1, "velocityCount": "vc"},
]

LOOPS = [
    # read-only bodies: no namespace built
    "#foreach($i in $l)$i $velocityCount $velocityHasNext#end",
    "#foreach($i in $l)$foreach.count/$foreach.index/$foreach.first/$foreach.last "
    "$foreach.hasNext#end",
    "#foreach($i in $l)$i.k ${i.n} $!i.x $i.k.size() $i.k.upper()#end",
    "#foreach($i in $l)#foreach($j in $l)$i$j$velocityCount#end $velocityCount#end",
    "#foreach($i in $d)$i $d.get($i)#end",
    "#foreach($foreach in $l)$foreach $foreach.count#end",
    "#foreach($velocityCount in $l)$velocityCount#end",
    "#foreach($i in $l)$foreach.put('count', 9)$foreach.count $foreach#end",
    "#foreach($i in $l)#if($velocityHasNext)$i, #else$i.#end#end",
    "#foreach($i in $s)[$i]#end",
    "#foreach($i in [1..$n])$i#end",
    "#foreach($i in $n)$i#end",
    "#foreach($i in $l)$n $s $d.k#end",
    "#foreach($i in $l)${i|'none'} $!{i}#end",
    "#foreach($i in $l)$i.__class__#end",
    # bodies that set names: the namespace is built with the loop variables named
    "#set($t = 0)#foreach($i in $l)#set($t = $t + 1)#set($u = $i)$u#end$t $u",
    "#foreach($i in $l)#set($i = 'r')$i $velocityCount#end",
    "#foreach($i in $l)#set($velocityCount = 7)$velocityCount#end",
    "#foreach($i in $l)#set($foreach = 1)$foreach#end",
    "#foreach($i in $l)#set($c = $velocityCount)#foreach($j in $l)#set($c = $c + 1)#end$c#end",
    "#foreach($i in $l)#if($i)#set($w = $i)#end$!w|#end",
    "#set($n = 1)#foreach($i in $l)#set($n = $n * 2)#end$n",
    # names set in the loop's or the template's namespace shadow the data's
    "#foreach($i in $l)#set($s = $i)$s#end $s",
    "#set($s = 'top')#foreach($i in $l)#set($s = $i)#end$s",
    "$s#set($s = 'new')$s#foreach($i in $l)$s $d#foreach($j in $l)$s#end#end",
    "#if($n)#set($d = 'set')#end#foreach($i in $l)$d#end$d",
]

MACROS = [
    "#macro(m $a $b)[$a|$b]#end#m('x' $n)#m($s $d)#m($l $nope)",
    "#macro(m $a)<$a>#end#foreach($i in $l)#m($i)#end",
    "#macro(m $a $a)$a#end#m(1 2)",
    "#macro(m $a)$a#end#m(1 2)",
    "#macro(m $a)$a#end#m()",
    "#m('early')#macro(m $a)$a#end#m('late')",
    "#macro(Stat $a)$a#end#Stat('x')#stat('y')",
    "#macro(m $a)$a#end#macro(m $a)$a$a#end#m('x')",
    "#macro(m $a)$a $n#end#m('x')",
    "#macro(m $a)#if($a)$a#end#end#m('x')#m($nope)",
    "#macro(m $a)$a#end#macro(k $b)#m($b)#end#k('x')",
    "#macro(r $a)#r($a)#end#r(1)",
    "#macro(m $a)$a.k$a#end#m($d)",
    "#macro(m)-#end#m()#m()",
    "#set($t = 'T')#macro(m $a)$a$t#end#m($t)#set($t = 'U')#m($t)",
    "#macro(m $a)$a#end#set($x = \"#m('in')\")$x",
]

METHODS = [
    "$l.size() $s.size() $d.size() $n.size() $nope.size()",
    "$s.length() $l.length() $s.strip(). $s.upper() $s.lower() $s.title() $l.upper()",
    "$s.toUpperCase() $s.trim() $l.trim() $!s.trim() $n.toUpperCase() $!nope.trim()",
    "$d.get('k') $d.get($k) $d.get('nope') $l.get(0) $d.get($l) $s.get(0)",
    "#set($m = {'k': 'v', 'get': 'g'})$m.get('k') #set($e = {})$e.get('k')",
    "$s.__len__() $s._x() $s.isEmpty() $d.isEmpty() $d.keySet()",
    "${s|'d'} ${nope|'d'} ${nope|$s} ${nope|$nope}",
    '#set($x = "$s-$n")$x #set($y = "${nope}!")$y',
    # properties: missing items, null receivers, dict attributes and shims
    "$d.x $!d.x ${d.x.y} $!{d.x.y} $d.k.x $!nope.x.y #if($d.x)y#{else}n#end",
    "$d.keys $d.items $d.get $d.isEmpty $d.toString $!d.values $d.__class__",
    "$d._x $!d._x",
    "$l[0].k $!l[1].k $l[5] $!l[-1].x $s[0] $d['k'] $l[0].k.x",
]


@pytest.mark.parametrize("velocity", LOOPS + MACROS + METHODS)
def test_compiled_form__fast_path__equals_jinja_path(velocity: str) -> None:
    # Given a template using the fast path's compiled forms
    source = convert(velocity).source
    assert ENGINE.compile(source).fast is not None, "the fast path no longer compiles it"
    for data in DATA:
        # When rendered by the fast path, by Jinja's code and publicly
        fast, jinja = _both(ENGINE, source, data)
        # Then all agree
        assert fast == jinja, (velocity, data)


def test_read_only_loop__compiled__builds_no_namespace() -> None:
    # Given loops whose bodies only read names
    # When compiled
    code = _code("#foreach($i in $l)$i.k $velocityCount#foreach($j in $i)$j#end#end")
    # Then no namespace is built per item (only where a helper is given one)
    assert "_vfor_bounded" not in code
    assert "_dict_update" not in code
    assert "_vns(" in code  # slow branches build it


def _namespace_keys(velocity: str) -> list[list[str]]:
    """The keys of each per-item namespace the fast code builds (`_dict_update(ns, {...})`),
    read from the generated code with its constants resolved."""
    fast = ENGINE.compile(convert(velocity).source).fast
    keys = []
    for node in ast.walk(ast.parse(fast.__fast_source__)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "_dict_update"
            and isinstance(node.args[1], ast.Dict)
        ):
            keys.append(sorted(fast.__globals__[key.id] for key in node.args[1].keys))
    return keys


def test_loop_setting_names__compiled__builds_slim_namespace() -> None:
    # Given a loop whose body sets names
    velocity = "#set($t = 0)#foreach($i in $l)#set($t = $t + $i)#end$t"
    # When compiled
    code = _code(velocity)
    # Then it is a plain loop building the namespace with the item only
    assert "_vfor_bounded" not in code
    assert _namespace_keys(velocity) == [["i"]]
    # (and with the loop variables its body names)
    assert _namespace_keys("#foreach($i in $l)#set($t = $velocityCount)$t#end") == [
        ["i", "velocityCount"]
    ]
    assert _namespace_keys("#foreach($i in $l)#set($t = $foreach.last)$t#end") == [["foreach", "i"]]


def test_macro__compiled__inlined() -> None:
    # Given a macro whose body is text and argument references
    code = _code("#macro(m $a $b)[$a|$b]#end#m('x' $n)")
    # When compiled
    # Then its calls run a plain function (no FunctionDef.execute)
    assert "def _im" in code
    assert "raise _Bail" in code  # the Jinja-style macro body is never run


@pytest.mark.parametrize(
    "velocity",
    [
        "#macro(m $a)#foreach($i in $a)$i#end#end#m($l)",  # body with a loop
        "#m('x')#macro(m $a)$a#end",  # called before it is defined
        "#macro(m $a)$a#end#set($x = 'y')#define($d)D#end$d#m('x')",  # a #define exists
    ],
)
def test_macro_not_inlinable__compiled__still_fast_and_equal(velocity: str) -> None:
    # Given macros the fast path does not inline
    source = convert(velocity).source
    # When compiled and rendered
    # Then renders still agree with Jinja
    for data in DATA:
        fast, jinja = _both(ENGINE, source, data)
        assert fast == jinja


def test_methods__compiled__inlined() -> None:
    # Given .size(), an unknown Java method and Map.get
    code = _code("$l.size() $s.toUpperCase() $d.get($k)")
    # When compiled
    # Then fast branches compute them without v_call
    assert "len(" in code and ".get(" in code


@pytest.mark.parametrize(
    "velocity",
    ["#set($t = 0)#foreach($i in $l)#set($t = $t + $i)#end$t", "${a|'x'} $a.upper()"],
)
def test_template_calling_a_counting_helper__compiled__budget_set_from_the_start(
    velocity: str,
) -> None:
    # Given a template whose helpers count against the budget (arithmetic, method calls)
    source = convert(velocity).source
    # When compiled
    compiled = ENGINE.compile(source)
    # Then its fast path runs under the render's one budget (never a second, local count)
    assert compiled.fast is not None and not compiled.bare
    for data in ({"a": "x", "l": [1, 2]}, {"a": None, "l": []}):
        assert _both(ENGINE, source, data)[0] == _both(ENGINE, source, data)[1]


def test_str_methods__compiled__inlined_only_under_the_gates_rule() -> None:
    # Given str methods with and without arguments
    # When compiled
    # Then only a method without arguments is inlined (on a short text, as the gate computes
    # it without counting); one with arguments goes through the gate's checks
    assert ".strip()" in _code("$s.strip()")
    assert ".strip(" not in _code("$s.strip('x')").replace(".strip()", "")


@pytest.mark.parametrize(
    "velocity",
    [
        "hello $a ${b.c} $!d",
        "#foreach($i in $l)$i#end",
        "#macro(m $a)[$a]#end#m('x')#m($a)",
        "${a|'x'} $!b ${b.c}",
    ],
)
def test_budget_free_template__render__sets_no_budget_outside(velocity: str) -> None:
    # Given templates whose render functions set their budget themselves
    source = convert(velocity).source
    compiled = ENGINE.compile(source)
    assert compiled.bare
    for data in ({"a": "x", "l": [1, 2]}, {"a": None, "l": ["y"]}, {"l": [{"k": 1}]}):
        # When rendered (successfully or not)
        with contextlib.suppress(TemplateRenderError):
            ENGINE.render(source, data)
        # Then no budget is left behind
        assert runtime.current_budget() is None


@pytest.mark.parametrize(
    "velocity",
    [
        "#foreach($i in [1..1000])x#end",
        "#foreach($i in $l)#foreach($j in [1..100])#end#end",
        "#foreach($i in [1..150])#set($t = \"${big|'x'}\")#end",  # produced, counted
        '#foreach($i in [1..150])#set($t = "$big$big")#end',
        "#macro(m $a)$a$a$a#end#foreach($i in [1..150])#set($t = $i)#m($big)#end",
        "#foreach($i in [1..150])$big#end",
        "$big.center(100000)",
        "#set($s = $big)#foreach($i in [1..20])#set($s = $s + $s)#end",
    ],
)
def test_runaway__compiled_forms__raise_limit_error(velocity: str) -> None:
    # Given templates exceeding a limit through the compiled forms
    source = convert(velocity).source
    assert LIMITED.compile(source).fast is not None
    data = {"l": [1, 2, 3], "big": "y" * 30}
    # When rendered by the fast path alone, and publicly
    # Then a limit stops them, as through Jinja
    with pytest.raises(TemplateLimitError):
        LIMITED._render_jinja(LIMITED.compile(source), data)
    with pytest.raises(TemplateLimitError):
        LIMITED._render_fast(source, data)
    with pytest.raises(TemplateLimitError):
        LIMITED.render(source, data)
    assert runtime.current_budget() is None


@pytest.mark.parametrize(
    "velocity",
    [
        "#foreach($i in $l)$i.__class__#end",
        "#macro(m $a)$a#end#m($s.__class__)",
        "#foreach($i in $l)#set($t = $i)$t.__class__.__mro__#end",
        "$s.__class__.toUpperCase()",
        "$d.get($s.__class__)",
    ],
)
def test_payload__compiled_forms__raise_security_error(velocity: str) -> None:
    # Given templates reaching Python internals through the compiled forms
    source = convert(velocity).source
    data = {"l": ["x"], "s": "x", "d": {}}
    # When rendered
    # Then the sandbox refuses them
    with pytest.raises(TemplateSecurityError):
        ENGINE.render(source, data)
    with pytest.raises(TemplateSecurityError):
        ENGINE._render_fast(source, data)


NAMES = ["a", "s", "l", "d", "i", "x"]


@st.composite
def _refs(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(NAMES + ["velocityCount", "foreach", "velocityHasNext"]))
    suffix = draw(
        st.sampled_from(
            ["", ".k", ".size()", ".strip()", ".toUpperCase()", ".get('k')", ".get($a)", ".count"]
        )
    )
    form = draw(st.sampled_from(["$%s", "$!%s", "${%s|'d'}", '"q$%s"']))
    return form % (name + suffix)


def _bodies(depth: int = 0) -> st.SearchStrategy[str]:
    leaf = st.one_of(
        st.sampled_from(["t ", "\n", "#m('c' $a)", "#m($i $x)"]),
        _refs(),
        st.builds(
            lambda n, r: f"#set(${n} = {r})",
            st.sampled_from(["a", "x", "i", "velocityCount"]),
            _refs(),
        ),
    )
    if depth >= 2:
        return st.lists(leaf, min_size=1, max_size=3).map("".join)
    inner = _bodies(depth + 1)
    loop = st.builds(
        lambda v, it, b: f"#foreach(${v} in {it}){b}#end",
        st.sampled_from(["i", "x", "foreach"]),
        st.sampled_from(["$l", "$d", "$s", "[1..2]", "$i"]),
        inner,
    )
    cond = st.builds(lambda r, b: f"#if({r}){b}#end", _refs(), inner)
    return st.lists(st.one_of(leaf, loop, cond), min_size=1, max_size=4).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    macro=st.sampled_from(["", "#macro(m $p $q)<$p|$q>#end", "#macro(m $p $p)$p#end"]),
    body=_bodies(),
    cases=st.lists(datas, min_size=1, max_size=3),
)
def test_random_compiled_forms__fast_path__equals_jinja_path(
    macro: str, body: str, cases: list
) -> None:
    # Given random loops, sets, macros and method calls, converted
    source = convert(macro + body).source
    # (only templates with a fast path count: if none had one, Hypothesis fails the test)
    assume(source is not None and ENGINE.compile(source).fast is not None)
    for data in cases:
        # When rendered by the fast path and by Jinja's code
        fast, jinja = _both(ENGINE, source, data)
        # Then both agree
        assert fast == jinja, (source, data)


WIDE = Engine(
    autoescape=False, limits=RenderLimits(max_output_chars=1_000, max_loop_iterations=100_000)
)
_MACRO_INTO_SET = (
    "{% macro _m1(_v) %}{{ _v|vno('a', '$a') }}{% endmacro %}{% set _v = _vdata|vroot %}"
    "{% do _v|vdefmacro('m', _m1, ['a']) %}{% do _v|vset('t', _v|vmacro('m', [_v|vn('big')])) %}"
    "ok"
)


@pytest.mark.parametrize(
    "source",
    [
        convert("#set($t = \"${big|'x'}\")ok").source,
        convert('#set($t = "$big")ok').source,
        convert('#foreach($i in [1])#set($t = "<$big>")#end ok').source,
        _MACRO_INTO_SET,
    ],
)
def test_piece_past_output_limit__compiled_forms__raise_limit_error(source: str) -> None:
    # Given a value built (not output) that is longer than the output limit
    assert WIDE.compile(source).fast is not None
    data = {"big": "y" * 1_500}
    # When rendered by Jinja, by the fast path alone and publicly
    # Then each refuses it
    with pytest.raises(TemplateLimitError):
        WIDE._render_jinja(WIDE.compile(source), data)
    with pytest.raises(TemplateLimitError):
        WIDE._render_fast(source, data)
    with pytest.raises(TemplateLimitError):
        WIDE.render(source, data)


@pytest.mark.parametrize(
    "velocity",
    [
        "#foreach($i in [1..60])#set($t = \"${big|'x'}\")#end ok",
        "#macro(m $a)$a#end#foreach($i in [1..60])#m($big)#end",
    ],
)
def test_much_text_built__render__is_jinjas(velocity: str) -> None:
    # Given templates building more text than the fast path counts (4 times the limit)
    source = convert(velocity).source
    data = {"big": "y" * 100}
    # When rendered publicly
    # Then the outcome is Jinja's (the fast path gives such renders to Jinja)
    public = _outcome(lambda: WIDE.render(source, data))
    assert public == _outcome(lambda: WIDE._render_jinja(WIDE.compile(source), data))


@pytest.mark.parametrize(
    ("max_loop_iterations", "max_steps"),
    # only iterations; only steps; both, steps first (twice); both, iterations first; neither
    [(30, 2_000_000), (2_000, 60), (30, 60), (31, 200), (20, 200), (1_000, 1_000)],
)
def test_loop_past_a_limit__counted_before_its_items__the_limit_jinja_reports(
    max_loop_iterations: int, max_steps: int
) -> None:
    # Given a loop over a list nothing in the template changes, and tight limits
    engine = Engine(
        autoescape=False,
        limits=RenderLimits(max_loop_iterations=max_loop_iterations, max_steps=max_steps),
    )
    source = convert("#foreach($i in $l)$i $d.k,#end").source
    data = {"l": list(range(40)), "d": {"k": "v"}}
    compiled = engine.compile(source)
    assert compiled.fast is not None
    # When both paths render it
    outcomes = []
    for render in (
        lambda: engine._render_fast(source, copy.deepcopy(data)),
        lambda: engine._render_jinja(compiled, copy.deepcopy(data)),
    ):
        try:
            outcomes.append(("ok", render()))
        except TemplateLimitError as exc:
            outcomes.append(("limit", str(exc)))
    # Then the fast path reports what Jinja reports, item by item (the same limit first)
    assert outcomes[0] == outcomes[1]


def test_streamed_reference__compiled__one_check_for_its_value_and_its_text() -> None:
    # Given references streamed into the output
    # When compiled
    # Then each has one inline check (value and text together), the general form behind it
    for velocity in ("$x", "$d.k", "$!{d.k.k}"):
        code = _code(velocity)
        assert ") is str or (type(" in code and "_text(" in code, velocity


def test_loop_over_a_sequence__compiled__counted_once_unless_the_template_can_change_it() -> None:
    # Given a loop over data nothing changes, and one whose body adds to a list
    fixed = _code("#foreach($i in $l)$i#end")
    changing = _code("#foreach($i in $l)$i$l.add(1)#end")
    # Then the first counts all its items before the first; the second counts each item
    assert "2 * _n" in fixed and "+= 2\n" not in fixed
    assert "+= 2\n" in changing


@pytest.mark.parametrize(
    "velocity",
    ["$x", "${x}", "$!x", "$!{x}", "$d.k", "$!d.k", "${d.k.k}", "$d.k.k", "[$x|$d.k]"],
)
@pytest.mark.parametrize(
    "value",
    [
        "text",
        "",
        0,
        -7,
        (1 << 30) - 1,
        1 << 30,
        -(1 << 30),
        10**40,
        2**3000,
        1.5,
        float("nan"),
        True,
        False,
        None,
        [1, "a", None],
        {"k": "v"},
        {"k": {"k": 3}},
    ],
)
def test_streamed_value__checked_inline__same_text_as_jinja(velocity: str, value: Any) -> None:
    # Given a reference streamed into the output, whose value has any JSON type or size
    source = convert(velocity).source
    for data in ({"x": value, "d": {"k": value}}, {"x": value, "d": value}, {}):
        # When both paths render it
        fast, jinja = _both(ENGINE, source, data)
        # Then the fast path's own text check gives Jinja's text (or its error)
        assert fast == jinja, (velocity, data)
