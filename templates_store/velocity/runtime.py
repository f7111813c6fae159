"""Runtime helpers that let converted templates evaluate exactly as airspeed 0.7.1 did.

Converted templates keep Velocity's data model: an explicit namespace chain
(`LocalNamespace`, the same shape as airspeed's) held in the Jinja variable `_v`, and
lookups that follow airspeed's NameOrCall rules.  Each helper is registered as a Jinja
filter: the Jinja compiler calls filters directly, which is much cheaper than the
sandbox's checked call path, and the helpers apply their own security policy.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from types import FunctionType, MappingProxyType
from typing import Any

from jinja2.runtime import Macro

from templates_store.sandbox import gate
from templates_store.sandbox import regex as bounded_regex
from templates_store.sandbox.budget import (
    ENTRY_BYTES,
    ITEM_BYTES,
    RenderBudget,
    _budget,
    _outside,
    charge_steps,
    check_size,
    count_iteration,
    current_budget,
    reserve,
    reset_budget,
    set_budget,
    stored_size,
    text_weight,
)
from templates_store.sandbox.regex import MatchResult
from templates_store.sandbox.text import charge_tree, to_text

from .errors import TemplateLimitError, TemplateRenderError, TemplateSecurityError

__all__ = [
    "FILTERS",
    "LocalNamespace",
    "FunctionDef",
    "RenderBudget",
    "check_size",
    "count_iteration",
    "current_budget",
    "set_budget",
    "reset_budget",
]

# Written where a `#stop` ran; whatever follows it in the same airspeed stream is dropped.
STOP_MARKER = "\x00vstop" + secrets.token_hex(8) + "\x00"

# the code of every function the fast path compiles (fastpath.py) carries this file name
FAST_TEMPLATE_FILENAME = "<fast template>"

# steps charged for converting and compiling an #evaluate text (a few milliseconds of work),
# and per character of it (a reference converts and compiles in about 20 microseconds); the
# longest text #evaluate takes
EVALUATE_STEPS = 10_000
EVALUATE_STEPS_PER_CHAR = 48
MAX_EVALUATE_CHARS = 20_000


def _count_built(size: int, weight: int | None = None) -> None:
    """Text built outside the streamed main body (in macros, #defines and interpolated
    strings): no piece may pass the output limit, and the total counts against the render's
    work (which bounds the CPU time of building text and what a render can keep; legacy
    templates that build a text by re-reading it each iteration, `#set($s = "$s$i,")`, do
    quadratic work with linear memory, and fit)."""
    budget = _budget.get()
    if budget is None:
        _outside()
    limit = budget.max_output_chars
    if size > limit:
        raise TemplateLimitError(f"output limit exceeded ({limit})")
    budget.produced += size if weight is None else weight
    if budget.produced > budget.max_work:
        raise TemplateLimitError(f"work limit exceeded (text built: {budget.produced} characters)")


def _produced(text: str) -> str:
    _count_built(len(text), text_weight(text))
    return text


# ---------------------------------------------------------------------------
# airspeed's namespace and Java shims
# ---------------------------------------------------------------------------


class LocalNamespace(dict):
    """Same lookup/assignment rules as airspeed.LocalNamespace."""

    __slots__ = ("parent",)

    def __init__(self, parent: Any) -> None:
        self.parent = parent

    # dict's own (C) lookup answers hits; only a miss goes up the chain
    def __missing__(self, key: Any) -> Any:
        return self.parent[key]

    def find_outermost(self, key: Any) -> LocalNamespace | None:
        ns: Any = self
        while True:
            if dict.__contains__(ns, key):
                return ns
            ns = ns.parent
            if not isinstance(ns, LocalNamespace):
                return None

    def set_inherited(self, key: Any, value: Any) -> None:
        ns = self.find_outermost(key)
        if ns is None:
            ns = self
        dict.__setitem__(ns, key, value)

    def top(self) -> Any:
        ns: Any = self
        while isinstance(ns, LocalNamespace):
            ns = ns.parent
        return ns

    def root(self) -> LocalNamespace:
        """The outermost namespace of the chain (the template's own, above the data)."""
        ns = self
        while isinstance(ns.parent, LocalNamespace):
            ns = ns.parent
        return ns


def _dict_to_string(obj: dict) -> str:
    """airspeed's `toString()` of a map: `{k=v, ...}`, each part measured before it is built."""
    budget = _budget.get()
    if budget is None:
        _outside()
    limit = budget.max_output_chars
    parts = []
    total = 2
    for key, value in obj.items():
        part = f"{to_text(key)}={to_text(value)}"
        total += len(part) + 2
        if total > limit:
            raise TemplateLimitError(f"value larger than the output limit ({limit})")
        parts.append(part)
    return "{" + ", ".join(parts) + "}"


def _array_set(self: list, index: Any, value: Any) -> Any:
    existing = self[index]
    self[index] = value
    return existing


def _scanned(size: int) -> None:
    charge_steps(1 + (size >> 10))


def _str_contains(self: str, value: Any) -> bool:
    _scanned(len(self))
    return value in self


def _str_starts_with(self: str, prefix: Any) -> bool:
    _scanned(len(prefix) if isinstance(prefix, str) else 1)
    return self.startswith(prefix)


def _list_contains(self: list, value: Any) -> bool:
    charge_steps(1 + (len(self) >> 4))
    # each item is compared with the value: a comparison walks the value's nested values (or
    # text) at most, and any item at all may be equal to it
    charge_tree(value, len(self))
    return value in self


def _list_add(self: list, value: Any) -> None:
    reserve(1, ITEM_BYTES + stored_size(value))
    self.append(value)
    check_size(self)


def _dict_put(self: dict, key: Any, value: Any) -> None:
    reserve(1, ENTRY_BYTES + stored_size(value))
    self.update({key: value})
    check_size(self)


def _dict_put_all(self: dict, values: Any) -> None:
    # charged as the gate charges `update` (a mapping, or a sequence of pairs)
    gate._update(self, (values,), {})
    self.update(values)
    check_size(self)


ADDITIONAL_METHODS: dict[type, dict[str, Callable[..., Any]]] = {
    str: {
        "length": lambda self: len(self),
        "replaceAll": lambda self, pattern, repl: bounded_regex.sub(pattern, repl, self),
        "startsWith": _str_starts_with,
        "matches": lambda self, pattern: bounded_regex.match(pattern, self),
        "contains": _str_contains,
    },
    list: {
        "size": lambda self: len(self),
        "get": lambda self, index: self[index],
        "contains": _list_contains,
        "add": _list_add,
        "set": _array_set,
    },
    dict: {
        "isEmpty": lambda self: not bool(self),
        "keySet": lambda self: self.keys(),
        "put": _dict_put,
        "putAll": _dict_put_all,
        "toString": _dict_to_string,
    },
}


class BoundShim:
    """airspeed's `NameOrCall.calculate` binding of a Java shim to its value. Read without
    parentheses (`$list.size`) it prints like airspeed's lambda,
    `<function NameOrCall.calculate.<locals>.<lambda> at 0x...>` (only the address differs; the
    converter warns about such references)."""

    __slots__ = ("obj", "method")

    def __init__(self, obj: Any, method: Callable[..., Any]) -> None:
        self.obj = obj
        self.method = method

    def __call__(self, *args: Any) -> Any:
        return self.method(self.obj, *args)

    def __repr__(self) -> str:
        return f"<function NameOrCall.calculate.<locals>.<lambda> at {hex(id(self))}>"


gate.register_callable_type(BoundShim)
gate.register_type(BoundShim)
gate.register_type(
    MatchResult,
    dict.fromkeys(("group", "groups", "groupdict", "start", "end", "span"), gate._step),
    ("string", "pos", "endpos", "lastindex", "lastgroup"),
)
gate.register_item_type(MatchResult)


def _shim(obj: Any, name: str) -> Any:
    methods = ADDITIONAL_METHODS.get(obj.__class__)
    if methods and name in methods:
        return BoundShim(obj, methods[name])
    return None


# exact types whose `obj["name"]` always raises TypeError (or finds nothing)
_NOT_SUBSCRIPTABLE_BY_NAME = frozenset({list, tuple, str, int, float, bool, type(None)})
# types whose items airspeed's `obj[name]` could find
_SUBSCRIPTABLE_BY_NAME = frozenset({MatchResult})
_MISSING = gate.MISSING


def _lookup(obj: Any, name: str) -> Any:
    """airspeed NameOrCall.calculate's lookup part (item, then attribute, then shim), every
    attribute through the gate."""
    kind = type(obj)
    if type(name) is not str:
        try:
            result = gate.item(obj, name)
        except (KeyError, IndexError, TypeError, AttributeError, TemplateSecurityError):
            raise TypeError("attribute name must be string") from None
        return result
    if kind is dict:
        # the same as `obj[name]` with a missing key as None, without the exception
        result = obj.get(name)
    elif kind is LocalNamespace:
        try:
            return obj[name]
        except (KeyError, TypeError):
            return None
    elif kind in _SUBSCRIPTABLE_BY_NAME:
        # (airspeed let IndexError through: a match has no group of that name, so `.group()`
        # on what `matches()` returned failed the render)
        try:
            result = obj[name]
        except (KeyError, TypeError, AttributeError):
            result = None
    else:
        result = None
    if result is None:
        result = gate.attribute(obj, name, True)
        if result is _MISSING:
            result = None
        if result is None:
            result = _shim(obj, name)
    return result


def _template_function(body: Any) -> bool:
    """A macro body the template itself defines: a Jinja macro, or the plain function the
    fast path compiled from one (never any other callable)."""
    return type(body) is Macro or (
        type(body) is FunctionType and body.__code__.co_filename == FAST_TEMPLATE_FILENAME
    )


def _direct(body: Any) -> Any:
    """The plain function of a one-argument Jinja macro (skips Macro's argument handling)."""
    if (
        type(body) is Macro
        and body._argument_count == 1
        and not (body.catch_kwargs or body.catch_varargs or body.caller)
    ):
        return body._func
    return body


class FunctionDef:
    """A `#macro` or `#define` body (a Jinja macro) with its declared argument names. The
    body charges its own steps when it runs (the environment puts a counter at the top of
    every macro body)."""

    __slots__ = ("name", "args", "body", "call")

    def __init__(self, name: str, args: list[str], body: Any) -> None:
        if not _template_function(body):
            raise TemplateSecurityError("a #macro or #define body must be a template macro")
        self.name = name
        self.args = args
        self.body = body
        self.call = _direct(body)

    def execute(self, ns: Any, values: list[Any]) -> str:
        args = self.args
        if len(values) != len(args):
            raise TemplateRenderError(
                f"function {self.name} expected {len(args)} arguments, got {len(values)}"
            )
        budget = _budget.get()
        if budget is None:
            _outside()
        budget.depth += 1
        if budget.depth > budget.max_depth:
            budget.depth -= 1
            raise TemplateLimitError("macro nesting too deep")
        try:
            local = LocalNamespace(ns)
            if args:
                dict.update(local, zip(args, values, strict=True))
            text = to_text(self.call(local))
            # text built inside macros/defines is not streamed: bound it here
            _count_built(len(text), text_weight(text))
            return text
        finally:
            budget.depth -= 1


gate.register_type(FunctionDef)


def _own_stream(text: str) -> str:
    """A separate airspeed stream (define output, interpolated string): `#stop` ends it."""
    cut = text.find(STOP_MARKER)
    return text if cut < 0 else text[:cut]


def _invoke(func: Any, args: list[Any]) -> Any:
    """Calling a value (`$name(args)`, `.name(args)` on a value holding a callable): only
    what the gate allows (bound methods of template value types, checked before the call,
    and airspeed's Java shims)."""
    return gate.call(func, tuple(args), None, True)


# ---------------------------------------------------------------------------
# Filters used by converted templates
# ---------------------------------------------------------------------------


def v_root(data: Any) -> LocalNamespace:
    # airspeed's TemplateBody: reuse the namespace when evaluated from #evaluate
    if isinstance(data, LocalNamespace):
        return data
    return LocalNamespace(data if data is not None else {})


def v_name(ns: LocalNamespace, name: str) -> Any:
    """`$name` (airspeed looks names up in the namespace chain, never as attributes)."""
    if type(ns) is dict:
        result = ns.get(name)
    else:
        try:
            result = ns[name]
        except (KeyError, TypeError):
            return None
    if type(result) is FunctionDef:
        return _own_stream(result.execute(ns, []))
    return result


def v_name_call(ns: LocalNamespace, name: str, args: list[Any]) -> Any:
    """`$name(args)`: a #define with arguments, or calling whatever the value is."""
    try:
        result = ns[name]
    except (KeyError, TypeError):
        return None
    if result is None:
        return None
    if type(result) is FunctionDef:
        return _own_stream(result.execute(ns, args))
    return _invoke(result, args)


def v_name_index(ns: LocalNamespace, name: str, index: Any) -> Any:
    """`$name[index]`: guarded indexing (a failed index is null)."""
    try:
        result = ns[name]
    except (KeyError, TypeError):
        return None
    if result is None:
        return None
    if type(result) is FunctionDef:
        return _own_stream(result.execute(ns, []))
    return _index(result, index)


def _index(result: Any, index: Any) -> Any:
    if isinstance(result, list) and not isinstance(index, int):
        raise TemplateRenderError(f"expected integer for array index, got '{index}'")
    try:
        return gate.item(result, index)
    except TemplateSecurityError:
        raise
    except Exception:
        return None


def _of_null(name: Any) -> Any:
    """`.name` on null: airspeed looked it up on Python's None, which has only special
    methods (`$x.__str__()` of a missing `$x` is `None`); any other name is null."""
    if type(name) is not str or name[:2] != "__":
        return None
    found = gate.attribute(None, name, True)
    return None if found is _MISSING else found


def v_prop(obj: Any, name: str) -> Any:
    """`.name` on a value."""
    if obj is None:
        return _of_null(name)
    if type(obj) is dict:
        result = obj.get(name)
        if result is not None:
            return result
    return _lookup(obj, name)


def v_prop_index(obj: Any, name: str, index: Any) -> Any:
    """`.name[index]` on a value."""
    if obj is None:
        return None
    result = _lookup(obj, name)
    if result is None:
        return None
    return _index(result, index)


def v_call(obj: Any, name: str, args: list[Any]) -> Any:
    """`.name(args)` on a value: an item holding a callable, Python methods (allowlisted),
    airspeed's Java shims, else null."""
    if obj is None:
        if type(name) is not str or name[:2] != "__":
            return None
        result = gate.call_method(None, name, tuple(args), True)
        return None if result is _MISSING else result
    kind = type(obj)
    if kind is dict:
        result = obj.get(name)
        if result is not None:
            return _invoke(result, args)
    elif kind is LocalNamespace or kind in _SUBSCRIPTABLE_BY_NAME or type(name) is not str:
        result = _lookup(obj, name)
        return None if result is None else _invoke(result, args)
    # the method looked up and called in one step through the gate
    result = gate.call_method(obj, name, tuple(args), True)
    if result is _MISSING:
        shim = _shim(obj, name)
        return None if shim is None else shim(*args)
    return result


def v_has_call(obj: Any, name: str) -> bool:
    """Whether `v_call(obj, name, args)` finds something to call: airspeed evaluated a call's
    arguments only then (its NameOrCall looks the name up first). Answers as v_call decides,
    without calling; a name that is found but refused counts as found (the call refuses it,
    after its arguments, as before)."""
    if obj is None:
        return type(name) is str and name[:2] == "__" and gate.has_method(None, name, True)
    kind = type(obj)
    if kind is dict:
        if obj.get(name) is not None:
            return True
    elif kind is LocalNamespace or kind in _SUBSCRIPTABLE_BY_NAME or type(name) is not str:
        try:
            return _lookup(obj, name) is not None
        except (TypeError, TemplateSecurityError):
            return True
    return gate.has_method(obj, name, True) or _shim(obj, name) is not None


def v_has_item(obj: Any, name: str) -> bool:
    """Whether `v_prop_index(obj, name, index)` finds a value to index (airspeed evaluated the
    index only then)."""
    try:
        if obj is None:
            # (airspeed looked `.name` up on Python's None: its special methods are found)
            return _of_null(name) is not None
        return _lookup(obj, name) is not None
    except (TypeError, TemplateSecurityError):
        return True


def v_has_name_item(ns: LocalNamespace, name: str) -> bool:
    """Whether `v_name_index(ns, name, index)` indexes a value (airspeed evaluated the index
    only then: a null or a #define renders without it)."""
    try:
        result = ns[name]
    except (KeyError, TypeError):
        return False
    return result is not None and type(result) is not FunctionDef


def v_item(obj: Any, index: Any) -> Any:
    """A bare `[index]` after a call/index: airspeed does not guard this one."""
    return gate.item(obj, index)


def v_out(value: Any, source: str) -> str:
    """A rendered reference: null renders the reference's own source text."""
    if value is None:
        return source
    return _produced(value if type(value) is str else to_text(value))


def v_name_out(ns: LocalNamespace, name: str, source: str) -> str:
    """`$name` in text: v_name + v_out fused, the most common reference."""
    try:
        value = ns[name]
    except (KeyError, TypeError):
        return source
    if value is None:
        return source
    if type(value) is FunctionDef:
        return v_out(_own_stream(value.execute(ns, [])), source)
    return _produced(value if type(value) is str else to_text(value))


# Output of the template's main body goes straight to the engine, which counts every
# chunk it streams against the output limit: these skip the per-value accounting (text
# built in macros, defines and interpolated strings keeps using the counted helpers above).


def v_name_text(ns: Any, name: str, source: str) -> Any:
    """`$name` streamed from the main body (the engine bounds the output)."""
    if type(ns) is dict:
        value = ns.get(name)
    else:
        try:
            value = ns[name]
        except (KeyError, TypeError):
            return source
    if value is None:
        return source
    if type(value) is FunctionDef:
        return _own_stream(value.execute(ns, []))
    return value


def v_out_text(value: Any, source: str) -> Any:
    """A streamed reference: null renders the reference's own source text."""
    return source if value is None else value


def v_quiet_text(value: Any) -> Any:
    """A streamed `$!x`: null renders nothing."""
    return "" if value is None else value


def v_quiet(value: Any) -> str:
    """`$!x`: null renders nothing."""
    if value is None:
        return ""
    return _produced(value if type(value) is str else to_text(value))


def v_alt(value: Any, alternate: Any) -> str:
    """`${x|default}`: the default when x is null (a null default renders as None)."""
    if value is None:
        value = alternate
    return _produced(value if type(value) is str else to_text(value))


def v_str(value: Any) -> str:
    return _produced(value if type(value) is str else to_text(value))


def v_and(left: Any, right: Any) -> bool:
    # both operands are already evaluated: airspeed's && does not short-circuit
    return bool(left) and bool(right)


def v_or(left: Any, right: Any) -> bool:
    return bool(left) or bool(right)


def v_div(left: Any, right: Any) -> Any:
    if type(left) is int and left.bit_length() > 2048:
        charge_steps(gate.big_int_steps(left.bit_length()))
    return left // right


def v_range(low: Any, high: Any) -> range:
    rng = range(low, high - 1, -1) if high < low else range(low, high + 1)
    budget = _budget.get()
    if budget is None:
        _outside()
    if len(rng) > budget.max_loop_iterations:
        raise TemplateLimitError(f"range larger than the loop limit ({budget.max_loop_iterations})")
    return rng


def v_set(ns: LocalNamespace, name: str, value: Any) -> str:
    ns.set_inherited(name, value)
    return ""


def v_set_path(ns: LocalNamespace, terms: list[str], value: Any) -> str:
    cur: Any = ns
    for term in terms[:-1]:
        cur = cur[term] if type(cur) is LocalNamespace else gate.item(cur, term)
    if isinstance(cur, LocalNamespace):
        raise TemplateSecurityError("cannot assign into the namespace")
    if type(cur) not in (dict, list):
        raise TypeError(f"'{type(cur).__name__}' object does not support item assignment")
    if type(cur) is not dict or terms[-1] not in cur:
        # a new entry; overwriting one releases what it held, as `#set($k = …)` does
        reserve(1, ENTRY_BYTES + stored_size(value))
    cur[terms[-1]] = value
    check_size(cur)
    return ""


def foreach_sequence(var: str, iterable: Any) -> tuple[Any, int]:
    """airspeed's checks before a `#foreach`: (what to iterate, its length). A dict iterates
    its keys, null iterates nothing, a number raises."""
    if iterable is None:
        return (), 0
    if hasattr(iterable, "keys"):
        iterable = iterable.keys()
    try:
        iter(iterable)
    except TypeError:
        raise TemplateRenderError(
            f"value for ${var} is not iterable in #foreach: {iterable}"
        ) from None
    return iterable, len(iterable)


def foreach_namespace(
    parent: Any, var: str, item: Any, counter: int, length: int, fe: Any = None
) -> LocalNamespace:
    """The namespace of one `#foreach` item, with airspeed's loop variables."""
    local = LocalNamespace(parent)
    has_next = counter < length
    if fe is None:
        fe = {
            "count": counter,
            "index": counter - 1,
            "hasNext": has_next,
            "first": counter == 1,
            "last": counter == length,
        }
    dict.update(
        local,
        {"velocityCount": counter, "velocityHasNext": has_next, "foreach": fe, var: item},
    )
    return local


def v_foreach(ns: LocalNamespace, var: str, iterable: Any) -> Any:
    """`#foreach`: one fresh LocalNamespace per item, with airspeed's loop variables."""
    iterable, length = foreach_sequence(var, iterable)
    for counter, item in enumerate(iterable, start=1):
        count_iteration()
        yield foreach_namespace(ns, var, item, counter, length)


def v_def_macro(ns: LocalNamespace, name: str, body: Any, args: list[str]) -> str:
    # airspeed stores macros in the data dict itself; the outermost namespace is the same
    # for every lookup of this render and keeps the caller's data untouched (no copy needed)
    if not isinstance(ns, LocalNamespace):
        raise TemplateRenderError("#macro outside a Velocity namespace")
    root = ns.root()
    key = "#" + name.lower()
    if dict.__contains__(root, key) or key in root.parent:
        raise TemplateRenderError(f"cannot redefine macro {key}")
    dict.__setitem__(root, key, FunctionDef(name, args, body))
    return ""


def v_define(ns: LocalNamespace, name: str, body: Any, args: list[str]) -> str:
    dict.__setitem__(ns, name, FunctionDef(name, args, body))
    return ""


def v_macro(ns: LocalNamespace, name: str, args: list[Any]) -> str:
    try:
        macro = ns["#" + name]
    except KeyError:
        raise TemplateRenderError("no such macro: " + name) from None
    if type(macro) is not FunctionDef:
        raise TemplateRenderError("no such macro: " + name)
    # the macro writes into the caller's stream: a #stop inside it stops the caller too
    return macro.execute(ns, args)


def v_block(ns: LocalNamespace, body: Any) -> str:
    """An interpolated string with directives: its own stream, same namespace."""
    if not _template_function(body):
        raise TemplateSecurityError("an interpolated block must be a template macro")
    return check_size(_own_stream(to_text(_direct(body)(ns))))


def v_stop(ns: Any) -> str:
    return STOP_MARKER


def v_raise(message: Any, *args: Any) -> str:
    raise TemplateRenderError(str(message))


def v_evaluate(ns: LocalNamespace, text: Any) -> str:
    """`#evaluate`: convert and render the text now, sharing the namespace and stream."""
    budget = _budget.get()
    if budget is None or budget.env is None:
        raise TemplateRenderError("#evaluate outside a render")
    from .converter import convert_evaluated

    # the text shares the namespace: its #defines are converted as such (as the converter
    # did when it checked a literal #evaluate text)
    defines = set()
    level: Any = ns
    while isinstance(level, LocalNamespace):
        defines.update(
            key for key, value in dict.items(level) if type(value) is FunctionDef and key[:1] != "#"
        )
        level = level.parent
    # converting and compiling cost about a millisecond plus the text's length
    size = len(text) if isinstance(text, str) else 0
    if size > MAX_EVALUATE_CHARS:
        raise TemplateLimitError(f"#evaluate text longer than {MAX_EVALUATE_CHARS} characters")
    charge_steps(EVALUATE_STEPS + EVALUATE_STEPS_PER_CHAR * size)
    conversion = convert_evaluated(text, frozenset(defines))
    if conversion.source is None:
        raise TemplateRenderError("#evaluate: template could not be converted")
    budget.depth += 1
    try:
        if budget.depth > budget.max_depth:
            raise TemplateLimitError("#evaluate nesting too deep")
        template = budget.env.engine.compile_evaluated(conversion.source)
        return to_text(template.render({"_vdata": ns}))
    finally:
        budget.depth -= 1


FILTERS: dict[str, Callable[..., Any]] = {
    "vroot": v_root,
    "vn": v_name,
    "vnc": v_name_call,
    "vni": v_name_index,
    "vp": v_prop,
    "vpi": v_prop_index,
    "vc": v_call,
    "vhas": v_has_call,
    "vhasi": v_has_item,
    "vhasn": v_has_name_item,
    "vi": v_item,
    "vo": v_out,
    "vno": v_name_out,
    "vnt": v_name_text,
    "vot": v_out_text,
    "vqt": v_quiet_text,
    "vq": v_quiet,
    "vs": v_str,
    "valt": v_alt,
    "vand": v_and,
    "vor": v_or,
    "vdiv": v_div,
    "vrange": v_range,
    "vset": v_set,
    "vsetp": v_set_path,
    "vfor": v_foreach,
    "vdefmacro": v_def_macro,
    "vdefine": v_define,
    "vmacro": v_macro,
    "vblock": v_block,
    "vstop": v_stop,
    "vraise": v_raise,
    "vevaluate": v_evaluate,
}

# Helpers that may change the data they are given: a render using them works on a copy.
# (`#macro` definitions live in the render's outermost namespace, not in the data.)
MUTATING_FILTERS = frozenset({"vnc", "vsetp", "vevaluate", "vdefine"})
# `.name(args)`: mutating only when the method may be one of these (or is not a constant)
METHOD_FILTERS = frozenset({"vc"})
# Names whose call may change a template's value (lists and dicts are its only mutable ones):
# what the gate allows on a list that a tuple lacks, on a dict that its read-only view lacks,
# and the Java shims that write. Derived, so an allowed name is never missed (dict.__ior__).
MUTATING_METHODS = frozenset(
    {
        name
        for kind, reads in (
            (list, set(dir(tuple))),
            # (a mapping proxy answers `|=` only to refuse it)
            (dict, set(dir(MappingProxyType)) - {"__ior__"}),
        )
        for name in gate.allowed_methods(kind) | gate.allowed_specials(kind)
        if name not in reads and name not in ("copy", "fromkeys")
    }
    | {"add", "put", "putAll", "set", "discard"}
)
