"""Runtime helpers that let converted templates evaluate exactly as airspeed 0.7.1 did.

Converted templates keep Velocity's data model: an explicit namespace chain
(`LocalNamespace`, the same shape as airspeed's) held in the Jinja variable `_v`, and
lookups that follow airspeed's NameOrCall rules.  Each helper is registered as a Jinja
filter: the Jinja compiler calls filters directly, which is much cheaper than the
sandbox's checked call path, and the helpers apply their own security policy.
"""

from __future__ import annotations

import _string
import contextvars
import re
import secrets
import string
from collections.abc import Callable
from typing import Any

from jinja2.runtime import Macro
from jinja2.sandbox import is_internal_attribute

from .errors import TemplateLimitError, TemplateRenderError, TemplateSecurityError


class RenderBudget:
    """Per-render counters; one instance per `Engine.render` call (held in a ContextVar).

    The counters start as class attributes (an instance only gets its own once it counts);
    `budget_class` makes a subclass with the limits fixed, instantiated without arguments.
    """

    iterations = 0
    produced = 0
    depth = 0
    max_output_chars: int
    max_loop_iterations: int
    max_depth: int = 64
    env: Any = None

    def __init__(
        self,
        max_output_chars: int,
        max_loop_iterations: int,
        max_depth: int = 64,
        env: Any = None,
    ) -> None:
        self.max_output_chars = max_output_chars
        self.max_loop_iterations = max_loop_iterations
        self.max_depth = max_depth
        self.env = env


def budget_class(
    max_output_chars: int, max_loop_iterations: int, max_depth: int, env: Any
) -> type[RenderBudget]:
    """A RenderBudget subclass with these limits; `cls()` is a fresh budget (cheap)."""
    return type(
        "EngineRenderBudget",
        (RenderBudget,),
        {
            "__init__": object.__init__,
            "max_output_chars": max_output_chars,
            "max_loop_iterations": max_loop_iterations,
            "max_depth": max_depth,
            "env": env,
        },
    )


_budget: contextvars.ContextVar[RenderBudget | None] = contextvars.ContextVar(
    "velocity_budget", default=None
)

# Written where a `#stop` ran; whatever follows it in the same airspeed stream is dropped.
STOP_MARKER = "\x00vstop" + secrets.token_hex(8) + "\x00"


def current_budget() -> RenderBudget | None:
    return _budget.get()


def set_budget(budget: RenderBudget | None) -> contextvars.Token[RenderBudget | None]:
    return _budget.set(budget)


def reset_budget(token: contextvars.Token[RenderBudget | None]) -> None:
    _budget.reset(token)


def count_iteration() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.iterations += 1
        if budget.iterations > budget.max_loop_iterations:
            raise TemplateLimitError(
                f"loop iteration limit exceeded ({budget.max_loop_iterations})"
            )


def check_size(value: Any) -> Any:
    """Reject strings/collections larger than the output limit before they grow further."""
    budget = _budget.get()
    if budget is not None:
        try:
            size = len(value)
        except TypeError:
            return value
        if size > budget.max_output_chars:
            raise TemplateLimitError(
                f"value larger than the output limit ({budget.max_output_chars})"
            )
    return value


# Text built outside the streamed main body (in macros, #defines and interpolated strings)
# is bounded in two ways:
# - each piece is a value: it may not be longer than the output limit (a template doubling
#   a string stops as soon as the string passes the limit);
# - the total work (every piece, re-reads of a growing string included) may not exceed
#   WORK_FACTOR times the output limit, and never less than MIN_WORK_CHARS.  This bounds
#   CPU time and what a render can keep (e.g. distinct strings stored in a list), while
#   leaving room for legacy templates that build a text by re-reading it each iteration
#   (`#set($s = "$s$i,")`: quadratic work, linear memory).  The former bound of 4 times
#   the output limit failed such templates long before their text was big.
WORK_FACTOR = 64
MIN_WORK_CHARS = 64_000_000


def _count_built(size: int) -> None:
    budget = _budget.get()
    if budget is not None:
        limit = budget.max_output_chars
        if size > limit:
            raise TemplateLimitError(f"output limit exceeded ({limit})")
        budget.produced += size
        if budget.produced > WORK_FACTOR * limit and budget.produced > MIN_WORK_CHARS:
            raise TemplateLimitError(
                f"work limit exceeded (text built: {budget.produced} characters)"
            )


def _produced(text: str) -> str:
    _count_built(len(text))
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
    return "{" + ", ".join([f"{k}={v}" for k, v in obj.items()]) + "}"


def _array_set(self: list, index: Any, value: Any) -> Any:
    existing = self[index]
    self[index] = value
    return existing


ADDITIONAL_METHODS: dict[type, dict[str, Callable[..., Any]]] = {
    str: {
        "length": lambda self: len(self),
        "replaceAll": lambda self, pattern, repl: re.sub(pattern, repl, self),
        "startsWith": lambda self, prefix: self.startswith(prefix),
        "matches": lambda self, pattern: re.match(pattern, self),
        "contains": lambda self, value: value in self,
    },
    list: {
        "size": lambda self: len(self),
        "get": lambda self, index: self[index],
        "contains": lambda self, value: value in self,
        "add": lambda self, value: self.append(value),
        "set": _array_set,
    },
    dict: {
        "isEmpty": lambda self: not bool(self),
        "keySet": lambda self: self.keys(),
        "put": lambda self, key, value: self.update({key: value}),
        "putAll": lambda self, values: self.update(values),
        "toString": lambda self: _dict_to_string(self),
    },
}

# str methods whose integer arguments size the result: bounded before the call.
_SIZING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_FORMAT_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d{7,})")


def _unsafe(name: str) -> None:
    raise TemplateSecurityError(f"access to {name!r} is not allowed")


class NameOrCall:
    """Named after airspeed's class: a shim read without parentheses (`$list.size`) renders
    `<function NameOrCall.calculate.<locals>.<lambda> at 0x...>` in both engines (only the
    address differs; the converter warns about such references)."""

    @staticmethod
    def calculate(obj: Any, method: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args: method(obj, *args)


_bind_shim = NameOrCall.calculate


def _shim(obj: Any, name: str) -> Any:
    methods = ADDITIONAL_METHODS.get(obj.__class__)
    if methods and name in methods:
        return _bind_shim(obj, methods[name])
    return None


# exact types whose `obj["name"]` always raises TypeError
_NOT_SUBSCRIPTABLE_BY_NAME = frozenset({list, tuple, str, int, float, bool, type(None)})


def _lookup(obj: Any, name: str) -> Any:
    """airspeed NameOrCall.calculate's lookup part (item, then attribute, then shim)."""
    kind = type(obj)
    if type(name) is not str:
        result = None
        try:  # noqa: SIM105 - hot path, contextlib.suppress is slower
            result = obj[name]
        except (KeyError, TypeError, AttributeError):
            pass
    elif kind is dict:
        # the same as `obj[name]` with a missing key as None, without the exception
        result = obj.get(name)
    elif kind in _NOT_SUBSCRIPTABLE_BY_NAME:
        result = None  # `obj[name]` raises TypeError
    else:
        result = None
        try:  # noqa: SIM105 - hot path, contextlib.suppress is slower
            result = obj[name]
        except (KeyError, TypeError, AttributeError):
            pass
    if result is None and not isinstance(obj, LocalNamespace):
        if name[:1] == "_":
            # legacy airspeed would hand out `__class__` & co.: never here
            _unsafe(name)
        # (with a default, a missing attribute raises nothing: cheaper than try/except)
        result = getattr(obj, name, None)
    if result is None:
        result = _shim(obj, name)
    return result


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
    """A `#macro` or `#define` body (a Jinja macro) with its declared argument names."""

    __slots__ = ("name", "args", "body", "call")

    def __init__(self, name: str, args: list[str], body: Any) -> None:
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
        if budget is not None:
            budget.depth += 1
            if budget.depth > budget.max_depth:
                budget.depth -= 1
                raise TemplateLimitError("macro nesting too deep")
        try:
            local = LocalNamespace(ns)
            if args:
                dict.update(local, zip(args, values, strict=True))
            text = str(self.call(local))
            # text built inside macros/defines is not streamed: bound it here
            _count_built(len(text))
            return text
        finally:
            if budget is not None:
                budget.depth -= 1


def _own_stream(text: str) -> str:
    """A separate airspeed stream (define output, interpolated string): `#stop` ends it."""
    cut = text.find(STOP_MARKER)
    return text if cut < 0 else text[:cut]


class LegacyFormatter(string.Formatter):
    """`str.format` exactly as Python (and so airspeed) runs it - a missing key, index or
    attribute raises - except that `_`-prefixed (and Jinja's internal) attributes are refused
    with our security error, and widths/precisions larger than the output limit are refused
    before anything is built.

    (Jinja's sandboxed formatter resolves fields Jinja's way: a missing field is empty text
    and `{0.name}` on a dict reads the key, which silently changed legacy output.)
    A format string with a visible `{0.__class__}` field is flagged needs_review by the
    converter; one that only exists at run time fails the render with TemplateSecurityError.
    """

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        return self._build(format_string, args, kwargs, 2, [0])

    def _build(self, format_string: str, args: Any, kwargs: Any, depth: int, auto: list) -> str:
        # CPython's build_string: field numbering (auto[0]: next index, or -1 once manual)
        # is decided by the field's first part (`{[0]}` is automatic, `{0[0]}` manual), and a
        # format spec is expanded only when it holds a field
        if depth <= 0:
            raise ValueError("Max string recursion exceeded")
        result = []
        for literal_text, field_name, format_spec, conversion in self.parse(format_string):
            if literal_text:
                result.append(literal_text)
            if field_name is None:
                continue
            first, rest = _string.formatter_field_name_split(field_name)
            if first == "":
                if auto[0] < 0:
                    raise ValueError(
                        "cannot switch from manual field specification to automatic field numbering"
                    )
                first = auto[0]
                auto[0] += 1
            elif type(first) is int:
                if auto[0] > 0:
                    raise ValueError(
                        "cannot switch from automatic field numbering to manual field specification"
                    )
                auto[0] = -1
            obj = self.get_value(first, args, kwargs)
            for is_attr, key in rest:
                if is_attr:
                    if key[:1] == "_" or is_internal_attribute(obj, key):
                        _unsafe(key)
                    obj = getattr(obj, key)
                else:
                    obj = obj[key]
            obj = self.convert_field(obj, conversion)
            if format_spec and "{" in format_spec:
                format_spec = self._build(format_spec, args, kwargs, depth - 1, auto)
            result.append(self.format_field(obj, format_spec))
        return "".join(result)

    def format_field(self, value: Any, format_spec: str) -> Any:
        if format_spec:
            budget = _budget.get()
            limit = budget.max_output_chars if budget is not None else 1_000_000
            # (nested fields are already substituted: `{0:>{1}}` is checked too)
            for number in _SPEC_NUMBER.findall(format_spec):
                if len(number) > 12 or int(number) > limit:
                    raise TemplateLimitError("format width larger than the output limit")
        return format(value, format_spec)


_SPEC_NUMBER = re.compile(r"\d+")
_FORMATTER = LegacyFormatter()


def _invoke(func: Any, args: list[Any]) -> Any:
    owner = getattr(func, "__self__", None)
    if isinstance(owner, str):
        name = getattr(func, "__name__", "")
        if name == "format":
            return check_size(_FORMATTER.vformat(owner, args, {}))
        if name == "format_map":
            if len(args) != 1:
                raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
            return check_size(_FORMATTER.vformat(owner, (), args[0]))
        if name in _SIZING_METHODS:
            for arg in args:
                if isinstance(arg, int):
                    check_size(range(arg))
        elif name == "replace" and len(args) >= 2 and isinstance(args[1], str):
            estimate = (owner.count(args[0]) + 1) * (len(args[1]) + 1) if args[0] else 0
            check_size(range(estimate + len(owner)))
    result = func(*args)
    if isinstance(result, (str, list, dict, bytes)):
        check_size(result)
    if isinstance(owner, (list, dict)):
        check_size(owner)
    return result


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
        return result[index]
    except Exception:
        return None


def v_prop(obj: Any, name: str) -> Any:
    """`.name` on a value."""
    if obj is None:
        return None
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
    """`.name(args)` on a value: Python methods, airspeed's Java shims, else null."""
    if obj is None:
        return None
    result = _lookup(obj, name)
    if result is None:
        return None
    return _invoke(result, args)


def v_item(obj: Any, index: Any) -> Any:
    """A bare `[index]` after a call/index: airspeed does not guard this one."""
    return obj[index]


def v_out(value: Any, source: str) -> str:
    """A rendered reference: null renders the reference's own source text."""
    if value is None:
        return source
    return _produced(value if type(value) is str else str(value))


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
    return _produced(value if type(value) is str else str(value))


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
    return _produced(value if type(value) is str else str(value))


def v_alt(value: Any, alternate: Any) -> str:
    """`${x|default}`: the default when x is null (a null default renders as None)."""
    if value is None:
        value = alternate
    return _produced(value if type(value) is str else str(value))


def v_str(value: Any) -> str:
    return _produced(value if type(value) is str else str(value))


def v_and(left: Any, right: Any) -> bool:
    # both operands are already evaluated: airspeed's && does not short-circuit
    return bool(left) and bool(right)


def v_or(left: Any, right: Any) -> bool:
    return bool(left) or bool(right)


def v_div(left: Any, right: Any) -> Any:
    return left // right


def v_range(low: Any, high: Any) -> range:
    if high < low:
        return range(low, high - 1, -1)
    return range(low, high + 1)


def v_set(ns: LocalNamespace, name: str, value: Any) -> str:
    ns.set_inherited(name, value)
    return ""


def v_set_path(ns: LocalNamespace, terms: list[str], value: Any) -> str:
    cur: Any = ns
    for term in terms[:-1]:
        cur = cur[term]
    if isinstance(cur, LocalNamespace):
        raise TemplateSecurityError("cannot assign into the namespace")
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
    return check_size(_own_stream(str(_direct(body)(ns))))


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
    conversion = convert_evaluated(text, frozenset(defines))
    if conversion.source is None:
        raise TemplateRenderError("#evaluate: template could not be converted")
    budget.depth += 1
    try:
        if budget.depth > budget.max_depth:
            raise TemplateLimitError("#evaluate nesting too deep")
        compiled = budget.env.engine.compile(conversion.source)
        return str(compiled.template.render({"_vdata": ns}))
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
MUTATING_METHODS = frozenset(
    {
        "add",
        "put",
        "putAll",
        "set",
        "append",
        "extend",
        "insert",
        "pop",
        "popitem",
        "remove",
        "clear",
        "update",
        "setdefault",
        "sort",
        "reverse",
        "discard",
    }
)
