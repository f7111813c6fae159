"""Fast path: the Jinja text of a lean template compiled to one plain Python function.

The stored template stays Jinja.  `compile_fast` takes the syntax tree that the sandboxed
environment's own parser produced (nothing of it is evaluated at compile time: no constant
folding, as in the environment's own code generator) and, when every node is of a kind
handled here, generates a plain function `render(data) -> str` that evaluates the same
expressions in the same order with the same helpers:

- runtime.py's helper filters (the same functions Jinja's code calls), `if`, `for`
  (counted through the loop budget like `_bounded_loop`), `set`, `do`, one-argument
  top-level macros, comparisons, `is none`, `not`/`and`/`or`, conditional expressions,
  `~` (size-checked) and arithmetic (`+ * ** % //` through the sandbox's `call_binop`);
- anything else (attribute or item access, calls, other filters or tests, blocks, names
  that are not certainly bound, autoescape) makes `compile_fast` answer None and the
  template keeps rendering through Jinja.

The generated code is built from the tree's structure only: every constant of the template
(text, strings, numbers) is held in the function's namespace and referred to by a generated
identifier, so no template text ever becomes code.

The main body's output in loops is bounded while it is produced (checked every iteration);
any exception aborts the fast render and the engine renders the template again through
Jinja, so errors (class and message) are always Jinja's own.

Compiled forms beyond one call per helper (each exactly the helpers' result, and a
"slow branch" calling the helper itself whenever the fast one cannot be sure):

- lookups over namespace chains known at compile time, `.name` on dicts, `[i]` on lists,
  `.size()`/`.length()`/plain str methods/`Map.get`, unknown Java methods on str (null);
- `#foreach` whose body only reads names: no namespace per item (its variables are Python
  variables; a namespace with the same contents is built only for a helper call); when the
  body sets names, a plain loop building the namespace with the loop variables it names;
- `#macro` whose body is text and argument references, defined at the top level on the
  root namespace: calls after the definition run a plain function, with FunctionDef's and
  v_name_out's output accounting summed per call;
- "lazy" renders (no #define, no generic loop, no macro call left to FunctionDef): loop
  iterations and produced text are counted in the render's own variables against the same
  limits; no helper of theirs reads a budget, and none is set (the engine sets none:
  `__needs_budget__` is false; a helper that would read one raises NoBudget, and Jinja renders
  the template).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import nodes

from templates_store.sandbox import gate
from templates_store.sandbox.budget import (
    RenderLimits,
    charge_steps,
    current_budget,
    steps_exceeded,
)
from templates_store.sandbox.environment import BOUNDED_LOOP, STEPS, BoundedEnvironment
from templates_store.sandbox.gate import big_int_steps
from templates_store.sandbox.text import text_size

from . import runtime
from .errors import TemplateLimitError

__all__ = ["compile_fast"]

_COMPARE = {
    "eq": "==",
    "ne": "!=",
    "gt": ">",
    "gteq": ">=",
    "lt": "<",
    "lteq": "<=",
    "in": "in",
    "notin": "not in",
}
# names with a meaning of their own in Jinja bodies (loop context, macro call details)
_SPECIAL_NAMES = frozenset({"loop", "caller", "varargs", "kwargs"})
# filters whose argument may be a macro (a callable only helpers ever see)
_MACRO_TAKERS = frozenset({"vdefmacro", "vdefine", "vblock"})
# the main body's output is checked against the limit at least every this many chunks
_CHECK_EVERY = 8
# fields of one generated f-string (longer outputs are joined from several)
_FSTRING_FIELDS = 32


class _Unsupported(Exception):
    pass


def _vfor_bounded(ns: Any, var: str, iterable: Any, weight: int) -> Iterator[Any]:
    """`_bounded_loop(v_foreach(ns, var, iterable), weight)` fused: the same namespaces, each
    iteration counted twice against the loop budget like the two generators do, and the
    body's weight in steps."""
    iterable, length = runtime.foreach_sequence(var, iterable)
    budget = runtime.current_budget()
    if budget is None:
        raise TemplateLimitError("loop outside a render")
    limit = budget.max_loop_iterations
    max_steps = budget.max_steps
    cost = weight
    namespace = runtime.foreach_namespace
    for counter, item in enumerate(iterable, start=1):
        budget.iterations += 2
        if budget.iterations > limit:
            raise TemplateLimitError(f"loop iteration limit exceeded ({limit})")
        budget.steps += cost
        if budget.steps > max_steps:
            steps_exceeded(budget)
        yield namespace(ns, var, item, counter, length)


# The checks `_vfor_bounded` makes before its first item: (sequence, length).
_vfor_seq = runtime.foreach_sequence


def _loop_limit(limit: int) -> None:
    raise TemplateLimitError(f"loop iteration limit exceeded ({limit})")


# The namespace `_vfor_bounded` builds for an item (a loop compiled without one).
_vns = runtime.foreach_namespace


class _Bail(Exception):
    """The fast render cannot give the helper's result: Jinja renders the template."""


Bail = _Bail


def _vno_value(value: Any, source: str, limit: int) -> str:
    """v_name_out's text of a macro argument that is not a str (measured before it is built;
    the inlined macro counts it as produced)."""
    if value is None:
        return source
    return _text(value, limit)


def _text(value: Any, limit: int) -> str:
    """What the environment's finalize gives a streamed value: its text, measured before it
    is built (the output it joins is bounded as it is collected)."""
    kind = type(value)
    if kind is int and value.bit_length() > 2048:
        # quadratic in its digits: charged (a render without its budget yet goes to Jinja)
        if current_budget() is None:
            raise _Bail
        charge_steps(big_int_steps(value.bit_length()))
    elif kind not in _SCALAR_TYPES:
        text_size(value, limit)
    return str(value)


def _loop_over(
    iterations: int, limit: int, steps: int, max_steps: int, length: int, cost: int
) -> None:
    """A loop counted before its first item passes a limit: the one an item-by-item count
    (two iterations, then `cost` steps, per item) would have passed first."""
    first_iterations = iterations - 2 * length
    first_steps = steps - cost * length
    # items counted before each limit is passed (the first item past it raises)
    within_iterations = (limit - first_iterations) // 2
    within_steps = (max_steps - first_steps) // cost if cost > 0 else length
    if within_iterations <= within_steps:
        _loop_limit(limit)
    _steps_limit(max_steps)


def _steps_limit(limit: int) -> None:
    raise TemplateLimitError(f"step limit exceeded ({limit} steps)")


def _no_budget() -> None:
    raise TemplateLimitError("template code cannot run outside a render")


def _produced_limit(max_chars: int) -> None:
    raise TemplateLimitError(f"output limit exceeded ({max_chars})")


def _plain_property(name: str) -> bool:
    """`.name` of a dict without that item is null (`_lookup`: no attribute, no shim)."""
    return (
        name[:1] not in ("_", "")
        and not hasattr(dict, name)
        and name not in runtime.ADDITIONAL_METHODS[dict]
    )


def _const_list(node: nodes.Node) -> list[Any] | None:
    """The values of a list of constants (a literal, or folded to a constant)."""
    if isinstance(node, nodes.List):
        if all(isinstance(i, nodes.Const) for i in node.items):
            return [i.value for i in node.items]  # type: ignore[attr-defined]
        return None
    if isinstance(node, nodes.Const) and type(node.value) is list:
        return list(node.value)
    return None


def _output_checker(max_chars: int) -> Callable[[list[str], list[int]], int]:
    def check(out: list[str], state: list[int]) -> int:
        """Count the chunks produced since the last check; returns the next check point."""
        done, total = state
        total += sum(map(len, out[done:]))
        if total > max_chars:
            raise TemplateLimitError(f"output limit exceeded ({max_chars} characters)")
        state[0] = len(out)
        state[1] = total
        return len(out) + _CHECK_EVERY

    return check


class _Scope:
    """A Jinja variable scope: the template, a macro body or a loop body."""

    def __init__(self, parent: _Scope | None, stores: set[str], function: bool) -> None:
        self.parent = parent
        self.stores = stores  # names assigned anywhere in this scope
        self.bound: dict[str, str] = {}  # names certainly bound here, to their variable
        self.function = function

    def lookup(self, name: str, shared: set[str]) -> str:
        """The variable of `name`; across a macro boundary only `shared` ones (variables
        assigned once, before the macro: macros and the data)."""
        scope: _Scope | None = self
        crossed = False
        while scope is not None:
            var = scope.bound.get(name)
            if var is not None:
                if crossed and var not in shared:
                    raise _Unsupported(f"macro reads the outer variable {name!r}")
                return var
            if name in scope.stores:
                # assigned in this scope but not certainly yet: Jinja's own rules apply
                raise _Unsupported(f"name {name!r} may be unbound")
            crossed = crossed or scope.function
            scope = scope.parent
        raise _Unsupported(f"name {name!r} is not bound")


def _scope_stores(body: list[nodes.Node]) -> set[str]:
    stores: set[str] = set()
    for node in body:
        if isinstance(node, nodes.Assign):
            if isinstance(node.target, nodes.Name):
                stores.add(node.target.name)
        elif isinstance(node, nodes.Macro):
            stores.add(node.name)
        elif isinstance(node, nodes.If):
            stores |= _scope_stores(node.body)
            for elif_ in node.elif_:
                stores |= _scope_stores(elif_.body)
            stores |= _scope_stores(node.else_)
    return stores


class _NotLazy(Exception):
    """The template needs the budget for all of its render (compiled eagerly)."""


class _Compiler:
    def __init__(
        self,
        env: Any,
        max_chars: int,
        budget_class: Any = None,
        max_iterations: int = 0,
        max_steps: int = 0,
        max_work: int = 0,
        loop_limit: int = 0,
    ) -> None:
        # lazy: the render function sets a budget itself when a helper first needs one
        self.lazy = budget_class is not None
        self.max_iterations = max_iterations
        self.loop_limit = loop_limit
        self.max_steps = max_steps
        self.env = env
        self.eval_ctx = nodes.EvalContext(env)
        self.namespace: dict[str, Any] = {
            "__builtins__": {
                "str": str,
                "len": len,
                "type": type,
                "dict": dict,
                "list": list,
                "int": int,
                "float": float,
            },
            "_join": "".join,
            "_check_size": runtime.check_size,
            "_call_binop": env.call_binop,
            "_concat": BoundedEnvironment.bounded_concat,
            "_compared": BoundedEnvironment.compared,
            "_charge": charge_steps,
            "_text": _text,
            "_steps_limit": _steps_limit,
            "_no_budget": _no_budget,
            "_SCALAR": _SCALAR_TYPES,
            "_SMALL": _SMALL,
            "_NSMALL": -_SMALL,
            "_vfor_bounded": _vfor_bounded,
            "_vfor_seq": _vfor_seq,
            "_vns": _vns,
            "_loop_limit": _loop_limit,
            "_loop_over": _loop_over,
            "_budget_get": runtime._budget.get,
            "_vno_value": _vno_value,
            "_new_dict": dict.__new__,
            "_LNS": runtime.LocalNamespace,
            "_dict_update": dict.update,
            "_produced_limit": _produced_limit,
            "_Bail": _Bail,
            "_check_output": _output_checker(max_chars),
            "_dict_get": dict.get,
            "_dict_setitem": dict.__setitem__,
            "_NUM": frozenset({int, float}),
            "_NUM_NONE": frozenset({int, float, bool, type(None)}),
            "_VALUE": _VALUE_TYPES,
            "_VALUE_NONE": _VALUE_TYPES | {type(None)},
            "_SIZED": frozenset({str, list, dict}),
        }
        # namespace variables whose lookup chain is known: var -> (vars from the innermost
        # namespace out, whether the last one is the (plain dict) data)
        self.chains: dict[str, tuple[tuple[str, ...], bool]] = {"_vdata": (("_vdata",), True)}
        self.assign_counts: dict[str, int] = {}
        self.inline = True
        # `pure` for a streamed value ("text": `text_pure`) or for a dict whose item is read
        # ("dict")
        self.text_mode: str | None = None
        self.values: dict[tuple[type, str], str] = {}
        self.variables: dict[tuple[int, str], str] = {}
        self.scopes: list[_Scope] = []
        self.filters: dict[str, str] = {}
        self.lines: list[str] = []
        self.counter = 0
        self.macro_vars: set[str] = set()
        # loop namespaces never built: var -> (key -> expression, code building it)
        self.virtual: dict[str, tuple[dict[str, str], str]] = {}
        self.defines = False
        self.macro_nodes: dict[str, nodes.Macro] = {}
        # inlined macros: lower-cased name -> (function, argument count, root namespace)
        self.inlined: dict[str, tuple[str, int, str]] = {}
        self.inline_calls: set[str] = set()
        self.inline_banned: set[str] = set()
        # built loop namespaces: keys certainly present and unchanged -> Python variable
        self.known: dict[str, dict[str, str]] = {}
        # built namespaces: the only names they may hold
        self.maybe_keys: dict[str, set[str]] = {}
        # root namespaces: the names they certainly hold (set at the top level before)
        self.present: dict[str, set[str]] = {}
        self.written: set[str] | None = None
        self.keys_safe = False
        self.max_chars = max_chars
        self.max_work = max_work
        # items of the data read by name (key constant -> variable): read once, when the
        # render starts (a template that cannot write into its data sees the same item at
        # every read; reading a plain dict by a str key runs no code of the data's)
        self.data_items: dict[str, str] = {}
        # the `$foreach` maps of loops without a namespace that nothing can change (the code
        # building one) -> the code of each of its fields
        self.foreach_fields: dict[str, dict[str, str]] = {}
        # variables counting a loop's items (ints from 1 up, below the loop limit)
        self.counters: set[str] = set()

    # -- names ------------------------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def value(self, value: Any) -> str:
        """A reference to an immutable constant held in the function's namespace."""
        # by repr: equal values may differ (0.0 and -0.0, range(0) and range(1, 1))
        key = (type(value), repr(value))
        name = self.values.get(key)
        if name is None:
            name = self.fresh("_k")
            self.namespace[name] = value
            self.values[key] = name
        return name

    def filter(self, name: str) -> str:
        ref = self.filters.get(name)
        if ref is None:
            func = _INTERNAL.get(name) or self.env.filters.get(name)
            if func is None or not (name in runtime.FILTERS or name in _INTERNAL):
                raise _Unsupported(f"filter {name!r}")
            if getattr(func, "jinja_pass_arg", None) is not None:
                raise _Unsupported(f"filter {name!r} takes a context")
            ref = self.fresh("_f")
            self.namespace[ref] = func
            self.filters[name] = ref
        return ref

    # -- statements ---------------------------------------------------------------------
    def write(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def template(self, tree: nodes.Template) -> None:
        scope = _Scope(None, _scope_stores(tree.body), True)
        scope.bound["_vdata"] = "_vdata"
        # nothing can change a sequence while a loop walks it: each loop counts all its
        # iterations before the first
        self.fixed_loops = not may_mutate(tree)
        if "_vdata" in scope.stores:
            raise _Unsupported("_vdata assigned")
        for assign in tree.find_all(nodes.Assign):
            if isinstance(assign.target, nodes.Name):
                name = assign.target.name
                self.assign_counts[name] = self.assign_counts.get(name, 0) + 1
        self.write(0, "def render(_vdata):")
        # lookups are inlined for plain dict data; anything else renders through Jinja
        self.write(1, "if type(_vdata) is not dict:")
        self.write(2, "return None")
        # a #define's body may write into the namespace it runs in (see virtual loops)
        self.defines = any(f.name == "vdefine" for f in tree.find_all(nodes.Filter))
        # no namespace write may create a `#name` key (where macros live)
        self.keys_safe = all(
            f.args
            and isinstance(f.args[0], nodes.Const)
            and type(f.args[0].value) is str
            and f.args[0].value[:1] != "#"
            for f in tree.find_all(nodes.Filter)
            if f.name in ("vset", "vdefine")
        )
        if self.lazy and any(
            f.name in _DEFINERS and f.name not in ("vdefmacro", "vmacro")
            for f in tree.find_all(nodes.Filter)
        ):
            raise _NotLazy  # (a `vmacro` call not inlined raises it where compiled)
        # names any `vset`/`vdefine` may write (None: not all are constants): a namespace
        # built here holds no other name (but its loop variables)
        written: set[str] | None = set()
        for f in tree.find_all(nodes.Filter):
            if f.name in ("vset", "vdefine") and written is not None:
                key = f.args[0] if f.args else None
                if isinstance(key, nodes.Const) and type(key.value) is str:
                    written.add(key.value)
                else:
                    written = None
        self.written = written
        start = len(self.lines)
        loops = tree.find(nodes.For) is not None
        if loops:
            if self.lazy:
                # iterations and loop steps counted here: no helper of a lazy render counts
                # any
                self.write(1, "_it = 0")
            else:
                # the render's budget, counted by loops compiled without namespaces
                self.write(1, "_bud = _budget_get()")
                self.write(1, "if _bud is None:")
                self.write(2, "return None")
                self.write(1, "_lim = _bud.max_loop_iterations")
                self.write(1, "_slim = _bud.max_steps")
            self.write(1, "out = []")
            self.write(1, "_append = out.append")
            self.write(1, "_state = [0, 0]")
            self.write(1, f"_mark = {_CHECK_EVERY}")
            self.body(tree.body, scope, 1, "_append", main=True, toplevel=True)
            self.write(1, "return _join(out)")
        else:
            self.function_body(tree.body, scope, 1, toplevel=True)
        if self.lazy:
            # the render's own counters of produced text and steps (it never has a budget)
            used = set(re.findall(r"\b_(?:pr|st)\b", "\n".join(self.lines[start:])))
            self.lines[start:start] = [f"    {var} = 0" for var in ("_pr", "_st") if var in used]
        # after the check that the data is a plain dict
        self.lines[start:start] = [
            f"    {var} = _vdata.get({key})" for key, var in self.data_items.items()
        ]

    def count_iteration(self, depth: int, weight: int) -> None:
        """One item of a `vfor` loop: two iterations, as `_bounded_loop(v_foreach(...))`,
        and the body's weight in steps."""
        cost = self.value(weight)
        if self.lazy:
            limit = self.value(self.max_iterations)
            steps = self.value(self.max_steps)
            self.write(depth, "_it += 2")
            self.write(depth, f"if _it > {limit}:")
            self.write(depth + 1, f"_loop_limit({limit})")
            self.write(depth, f"_st += {cost}")
            self.write(depth, f"if _st > {steps}:")
            self.write(depth + 1, f"_steps_limit({steps})")
        else:
            self.write(depth, "_bud.iterations += 2")
            self.write(depth, "if _bud.iterations > _lim:")
            self.write(depth + 1, "_loop_limit(_lim)")
            self.write(depth, f"_bud.steps += {cost}")
            self.write(depth, "if _bud.steps > _slim:")
            self.write(depth + 1, "_steps_limit(_slim)")

    def count_loop(self, depth: int, weight: int, length: str) -> None:
        """All the items of a `vfor` loop over a sequence nothing changes, counted before the
        first: the same totals as `count_iteration` per item; the limit that an item-by-item
        count reaches first is the one reported."""
        cost = self.value(weight)
        if self.lazy:
            limit = self.value(self.max_iterations)
            steps = self.value(self.max_steps)
            self.write(depth, f"_it += 2 * {length}")
            self.write(depth, f"_st += {cost} * {length}")
            self.write(depth, f"if _it > {limit} or _st > {steps}:")
            self.write(
                depth + 1,
                f"_loop_over(_it, {limit}, _st, {steps}, {length}, {cost})",
            )
        else:
            self.write(depth, f"_bud.iterations += 2 * {length}")
            self.write(depth, f"_bud.steps += {cost} * {length}")
            self.write(depth, "if _bud.iterations > _lim or _bud.steps > _slim:")
            self.write(
                depth + 1,
                f"_loop_over(_bud.iterations, _lim, _bud.steps, _slim, {length}, {cost})",
            )

    def lazy_produced(self, node: nodes.Filter, scope: _Scope) -> str:
        """vo/vq/vs/valt in a lazy render: the same text, its length counted in `_pr` (the
        render's `budget.produced`: no helper of a lazy render counts it), bounded as
        runtime._count_built bounds it."""
        name = node.name
        if self.env.filters.get(name) is not runtime.FILTERS[name] or name == "vno":
            raise _NotLazy
        arity = {"vo": 1, "vq": 0, "vs": 0, "valt": 1}[name]
        if len(node.args) != arity:
            raise _NotLazy  # the helper's TypeError, through Jinja
        value = self.expr(node.node, scope)  # type: ignore[arg-type]
        raw, text = self.fresh("_u"), self.fresh("_w")
        limit = self.value(self.max_chars)
        # runtime._count_built: no piece past the output limit, the total within the work
        produced = (
            f"({text} if len({text} := ({raw} if type({raw}) is str else _text({raw}, {limit}))) "
            f"<= {limit} and (_pr := _pr + len({text})) <= {self.value(self.max_work)} "
            f"else _produced_limit({limit}))"
        )
        if name == "vs":
            return f"(({raw} := {value}), {produced})[1]"
        if name == "vq":
            return f"({self.value('')} if ({raw} := {value}) is None else {produced})"
        other = self.expr(node.args[0], scope)
        alt = self.fresh("_u")
        if name == "vo":
            # both arguments evaluated, as the helper's
            return f"({alt} if (({raw} := {value}), ({alt} := {other}))[0] is None else {produced})"
        return (
            f"({produced} if (({raw} := {value}), ({alt} := {other})) and "
            f"(({raw} is not None) or ({raw} := {alt}) is None or True) else None)"
        )

    def literal_range(self, node: nodes.Filter) -> str | None:
        """`[1..5]` with literal bounds: the range v_range gives, a constant of the function
        (built from two literal integers, within the loop limit: no template code runs)."""
        if not (
            node.name == "vrange"
            and self.env.filters.get("vrange") is runtime.v_range
            and isinstance(node.node, nodes.Const)
            and len(node.args) == 1
            and isinstance(node.args[0], nodes.Const)
            and type(node.node.value) is int
            and type(node.args[0].value) is int
        ):
            return None
        low, high = node.node.value, node.args[0].value
        rng = range(low, high - 1, -1) if high < low else range(low, high + 1)
        if len(rng) > self.loop_limit:
            return None  # the helper raises the limit error at render time
        return self.value(rng)

    def compared(self, node: nodes.Node, scope: _Scope) -> str:
        """An operand of a comparison: numbers and short strings as they are, anything else
        charged its size (`BoundedEnvironment.compared`)."""
        code = self.expr(node, scope)
        if _small_const(node):
            return code
        temp = self.fresh("_t")
        slow = self.budgeted(f"_compared({temp})")
        return (
            f"({temp} if type({temp} := {code}) in _NUM_NONE or "
            f"(type({temp}) is str and len({temp}) < 4096) else {slow})"
        )

    def budgeted(self, call: str) -> str:
        """A call of a helper that reads the budget. A lazy render counts everything in its
        own variables and never has a budget: a template calling such a helper is compiled
        with the budget set from the start (one count, as the Jinja path keeps)."""
        if self.lazy:
            raise _NotLazy
        return call

    def function_body(
        self, body: list[nodes.Node], scope: _Scope, depth: int, toplevel: bool = False
    ) -> None:
        """A body whose text is returned (a macro, or a template without loops)."""
        # trailing pure output is returned as one expression
        split = len(body)
        while split > 0 and self.pure_output(body[split - 1]):
            split -= 1
        if split == 0:
            self.write(depth, "return " + self.text_expr(body, scope))
            return
        head = body[:split]
        if not any(isinstance(n, (nodes.Output, nodes.If, nodes.For)) for n in head):
            # statements that write nothing, then the text
            self.body(head, scope, depth, "_unused", main=False, toplevel=toplevel)
            self.write(depth, "return " + self.text_expr(body[split:], scope))
            return
        buf = self.fresh("_b")
        self.write(depth, f"{buf} = []")
        self.body(head, scope, depth, f"{buf}.append", main=False, toplevel=toplevel)
        if split < len(body):
            self.write(depth, f"{buf}.append({self.text_expr(body[split:], scope)})")
        self.write(depth, f"return _join({buf})")

    def pure_output(self, node: nodes.Node) -> bool:
        if isinstance(node, nodes.Output):
            return True
        if isinstance(node, nodes.If):
            return all(
                self.pure_output(n)
                for n in node.body + [n for e in node.elif_ for n in e.body] + list(node.else_)
            )
        return False

    def text_expr(self, body: list[nodes.Node], scope: _Scope) -> str:
        """A str expression for pure output (Output and If nodes), evaluated in order."""
        parts = self.text_parts(body, scope)
        if not parts:
            return self.value("")
        if len(parts) == 1 and parts[0][0]:
            return parts[0][1]
        limit = self.value(self.max_chars)
        fields = [
            "{(" + (p if is_str else self.text_of(p, limit, field=True)) + ")}"
            for is_str, p in parts
        ]
        if len(fields) <= _FSTRING_FIELDS:
            return 'f"' + "".join(fields) + '"'
        # Python compiles one long f-string in time quadratic in its fields: joined in pieces
        pieces = [
            'f"' + "".join(fields[i : i + _FSTRING_FIELDS]) + '"'
            for i in range(0, len(fields), _FSTRING_FIELDS)
        ]
        return "_join((" + ", ".join(pieces) + ",))"

    def text_parts(self, body: list[nodes.Node], scope: _Scope) -> list[tuple[bool, str]]:
        """(already a str, expression) pairs."""
        parts: list[tuple[bool, str]] = []
        for node in body:
            if isinstance(node, nodes.Output):
                parts.extend(self.output_parts(node, scope))
            elif isinstance(node, nodes.If):
                parts.append((True, "(" + self.if_expr(node, scope) + ")"))
            else:  # pragma: no cover - callers check pure_output
                raise _Unsupported(type(node).__name__)
        return parts

    def streamed(self, node: nodes.Node, scope: _Scope) -> str:
        """The code of an output value; one whose text the fast form already checks is
        marked (`_STREAMED`): `text_of` then keeps it as it is in an f-string field."""
        fast = self.text_pure(node, scope) if self.inline else None
        general = self.expr(node, scope)
        if general in self.inline_calls:
            return _STREAMED + general  # an inlined macro's text
        if fast is None:
            return general
        cond, var = fast
        limit = self.value(self.max_chars)
        return f"{_STREAMED}({var} if {cond} else {self.text_of(general, limit)})"

    def text_of(self, code: str, limit: str, field: bool = False) -> str:
        """The text of a streamed value: a str as it is, a float or a small int its
        `str()`, anything else measured (`_text`). As an f-string's `field`, a number is left
        to the f-string's own conversion (the same text)."""
        if code.startswith(_STREAMED):
            code = code[len(_STREAMED) :]
            if field:
                return code
            temp = self.fresh("_t")
            return f"({temp} if type({temp} := {code}) is str else str({temp}))"
        temp = self.fresh("_t")
        number = f"(type({temp}) is int and _NSMALL < {temp} < _SMALL) or type({temp}) is float"
        if field:
            return (
                f"({temp} if type({temp} := {code}) is str or {number} else _text({temp}, {limit}))"
            )
        return (
            f"({temp} if type({temp} := {code}) is str else str({temp}) if {number} "
            f"else _text({temp}, {limit}))"
        )

    def if_expr(self, node: nodes.If, scope: _Scope) -> str:
        test = self.expr(node.test, scope)
        body = self.joined(node.body, scope)
        if node.elif_:
            rest = nodes.If(node.elif_[0].test, node.elif_[0].body, node.elif_[1:], node.else_)
            other = "(" + self.if_expr(rest, scope) + ")"
        else:
            other = self.joined(node.else_, scope)
        return f"{body} if {test} else {other}"

    def joined(self, body: list[nodes.Node], scope: _Scope) -> str:
        """Like text_expr, usable inside an f-string expression (no quotes)."""
        parts = self.text_parts(body, scope)
        if not parts:
            return self.value("")
        limit = self.value(self.max_chars)
        code = [p if is_str else self.text_of(p, limit) for is_str, p in parts]
        if len(code) == 1:
            return code[0]
        return "_join((" + ", ".join(code) + ",))"

    def output_parts(self, node: nodes.Output, scope: _Scope) -> list[tuple[bool, str]]:
        parts: list[tuple[bool, str]] = []
        consts: list[str] = []
        for child in node.nodes:
            # literal text and literal constants are text now; nothing else is evaluated
            # before the render
            text = _literal_text(child)
            if text is None:
                if consts:
                    parts.append((True, self.value("".join(consts))))
                    consts = []
                parts.append((False, self.streamed(child, scope)))
                continue
            consts.append(text)
        if consts:
            parts.append((True, self.value("".join(consts))))
        return parts

    def body(
        self,
        body: list[nodes.Node],
        scope: _Scope,
        depth: int,
        append: str,
        main: bool,
        toplevel: bool = False,
    ) -> None:
        if not body:
            self.write(depth, "pass")
            return
        run: list[nodes.Node] = []

        def flush() -> None:
            if run:
                self.write(depth, f"{append}({self.text_expr(run, scope)})")
                run.clear()

        for node in body:
            if isinstance(node, nodes.Output):
                run.append(node)
                continue
            flush()
            if isinstance(node, nodes.If):
                self.if_statement(node, scope, depth, append, main)
            elif isinstance(node, nodes.Assign):
                if not isinstance(node.target, nodes.Name) or node.target.ctx != "store":
                    raise _Unsupported("assignment target")
                name = node.target.name
                if name in _SPECIAL_NAMES:
                    raise _Unsupported(name)
                var = self.variable(scope, name)
                if self.root_of_data(node.node, scope):
                    # v_root of the (plain dict) data: a new namespace over it
                    self.write(depth, f"{var} = _new_dict(_LNS)")
                    self.write(depth, f"{var}.parent = _vdata")
                    if self.written is not None:
                        self.maybe_keys[var] = self.written
                    self.present[var] = set()
                else:
                    self.write(depth, f"{var} = {self.expr(node.node, scope)}")
                scope.bound[name] = var
                self.chains.pop(var, None)
                if self.assign_counts.get(name) == 1:
                    self.note_chain(var, node.node, scope)
            elif isinstance(node, nodes.ExprStmt):
                self.write(depth, self.statement_expr(node.node, scope))
                if toplevel:
                    self.note_macro_def(node.node, scope, depth)
                    self.note_present(node.node, scope)
            elif isinstance(node, nodes.For):
                self.for_statement(node, scope, depth, append, main)
            elif isinstance(node, nodes.Macro):
                if not toplevel:
                    raise _Unsupported("macro outside the template's top level")
                self.macro(node, scope, depth)
            else:
                raise _Unsupported(type(node).__name__)
        flush()

    def variable(self, scope: _Scope, name: str) -> str:
        """The Python variable of `name` in this Jinja scope (one per scope and name)."""
        key = (id(scope), name)
        self.scopes.append(scope)  # kept alive: ids stay unique
        var = self.variables.get(key)
        if var is None:
            var = self.fresh("_l")
            self.variables[key] = var
        return var

    def if_statement(
        self, node: nodes.If, scope: _Scope, depth: int, append: str, main: bool
    ) -> None:
        before = dict(scope.bound)
        branches = [(node.test, node.body)] + [(e.test, e.body) for e in node.elif_]
        results: list[dict[str, str]] = []
        keyword = "if"
        for test, body in branches:
            self.write(depth, f"{keyword} {self.expr(test, scope)}:")
            scope.bound = dict(before)
            self.body(body, scope, depth + 1, append, main)
            results.append(scope.bound)
            scope.bound = dict(before)
            keyword = "elif"
        if node.else_:
            self.write(depth, "else:")
            scope.bound = dict(before)
            self.body(node.else_, scope, depth + 1, append, main)
            results.append(scope.bound)
            # bound after the `if` when bound on every branch
            common = set(results[0].items())
            for result in results[1:]:
                common &= set(result.items())
            scope.bound = dict(before)
            scope.bound.update(dict(common))
        else:
            scope.bound = before

    def for_statement(
        self, node: nodes.For, scope: _Scope, depth: int, append: str, main: bool
    ) -> None:
        if node.else_ or node.test is not None or node.recursive:
            raise _Unsupported("for with else/test/recursive")
        if not isinstance(node.target, nodes.Name) or node.target.name in _SPECIAL_NAMES:
            raise _Unsupported("for target")
        iterable = node.iter
        weight = _loop_weight(iterable)
        if (
            weight is not None
            and isinstance(iterable.node, nodes.Filter)
            and iterable.node.name == "vfor"
            and iterable.node.node is not None
            and len(iterable.node.args) == 2
            and not (iterable.node.kwargs or iterable.node.dyn_args or iterable.node.dyn_kwargs)
            and self.env.filters.get("vfor") is runtime.v_foreach
        ):
            vfor = iterable.node
            self.filter("_bounded_loop")  # same availability checks as the generic path
            self.filter("vfor")
            if self.loop_body_ok(node, vfor, scope, writes=False):
                self.virtual_for(node, vfor, scope, depth, append, main, weight)
                return
            if self.loop_body_ok(node, vfor, scope, writes=True):
                self.slim_for(node, vfor, scope, depth, append, main, weight)
                return
            args = [self.expr(vfor.node, scope)] + [self.expr(a, scope) for a in vfor.args]
            source = f"_vfor_bounded({', '.join(args)}, {self.value(weight)})"
        else:
            source = self.expr(iterable, scope)
        if self.lazy:
            raise _NotLazy  # counted by helpers through the budget
        inner = _Scope(scope, _scope_stores(node.body), False)
        target = self.variable(inner, node.target.name)
        inner.bound[node.target.name] = target
        self.chains.pop(target, None)
        if source.startswith("_vfor_bounded(") and node.target.name not in inner.stores:
            outer = iterable.node.node  # type: ignore[union-attr]
            if isinstance(outer, nodes.Name):
                chain = self.chains.get(scope.lookup(outer.name, set()))
                if chain is not None:
                    self.chains[target] = ((target, *chain[0]), chain[1])
        self.write(depth, f"for {target} in {source}:")
        self.body(node.body, inner, depth + 1, append, main)
        if main:
            self.write(depth + 1, "if len(out) >= _mark:")
            self.write(depth + 2, "_mark = _check_output(out, _state)")

    def loop_body_ok(
        self, node: nodes.For, vfor: nodes.Filter, scope: _Scope, writes: bool
    ) -> bool:
        """The loop body only reads namespaces (with `writes`: or sets names in them), by
        constant names, through helpers that look up that name only.

        Without writes its namespace need not exist (it is built, with the same contents,
        only where a helper is given it); with writes it is built with the loop variables
        the body names only (nothing else can see the others)."""
        if self.defines or not isinstance(vfor.node, nodes.Name):
            return False
        var = vfor.args[0]
        if not (isinstance(var, nodes.Const) and type(var.value) is str):
            return False
        if node.target.name in _scope_stores(node.body):
            return False
        # the parent must be a namespace variable, not a macro
        if scope.lookup(vfor.node.name, self.macro_vars | {"_vdata"}) in self.macro_vars:
            return False
        allowed: set[int] = set()
        for child in node.body:
            for sub in child.find_all(nodes.Node):
                if isinstance(sub, nodes.Stmt) and not isinstance(
                    sub,
                    (nodes.Output, nodes.If, nodes.For, nodes.ExprStmt)
                    if writes
                    else (nodes.Output, nodes.If, nodes.For),
                ):
                    return False
                if isinstance(sub, nodes.Filter):
                    if sub.kwargs or sub.dyn_args or sub.dyn_kwargs:
                        return False
                    if sub.name not in _READ_ONLY and not (writes and sub.name == "vset"):
                        return False
                    if sub.name in _NAME_READERS or sub.name == "vset":
                        key = sub.args[0] if sub.args else None
                        if not (
                            isinstance(key, nodes.Const)
                            and type(key.value) is str
                            and key.value[:1] != "#"
                        ):
                            return False
                    if (sub.name in _NAME_READERS or sub.name in ("vfor", "vset")) and isinstance(
                        sub.node, nodes.Name
                    ):
                        allowed.add(id(sub.node))
        for child in node.body:
            for name in child.find_all(nodes.Name):
                if id(name) not in allowed and name.ctx == "load":
                    return False
        return True

    def virtual_for(
        self,
        node: nodes.For,
        vfor: nodes.Filter,
        scope: _Scope,
        depth: int,
        append: str,
        main: bool,
        weight: int,
    ) -> None:
        """`for _v1 in _v|vfor('x', items)` without building `_v1`: the loop variables are
        Python variables, the namespace is built only for a helper call (a slow branch)."""
        parent_node = vfor.node
        assert isinstance(parent_node, nodes.Name)
        parent = scope.lookup(parent_node.name, self.macro_vars | {"_vdata"})
        parent_code = self.expr(parent_node, scope)  # (builds a virtual parent)
        var_name = vfor.args[0].value  # type: ignore[attr-defined]
        var_key = self.value(var_name)
        iterable = self.expr(vfor.args[1], scope)
        inner = _Scope(scope, _scope_stores(node.body), False)
        target = self.variable(inner, node.target.name)
        inner.bound[node.target.name] = target
        seq, length, count, item, has_next = (self.fresh(p) for p in ("_s", "_n", "_c", "_i", "_h"))
        uses_foreach = any(
            isinstance(c, nodes.Const) and c.value == "foreach"
            for child in node.body
            for c in child.find_all(nodes.Const)
        )
        fe = self.fresh("_fe") if uses_foreach else "None"
        if uses_foreach and self.fixed_loops:
            # nothing can change the `$foreach` map: its fields are read from the loop's
            # variables, and the map (an equal one) is built only where a helper is given it
            fe = (
                f"{{{self.value('count')}: {count}, {self.value('index')}: {count} - 1, "
                f"{self.value('hasNext')}: {has_next}, {self.value('first')}: {count} == 1, "
                f"{self.value('last')}: {count} == {length}}}"
            )
            self.foreach_fields[fe] = {
                "count": count,
                "index": f"({count} - 1)",
                "hasNext": has_next,
                "first": f"({count} == 1)",
                "last": f"({count} == {length})",
            }
        keys = {"velocityCount": count, "velocityHasNext": has_next, var_name: item}
        if uses_foreach:
            keys["foreach"] = fe
            keys[var_name] = item  # `#foreach($foreach in ...)`: the item wins
        build = f"_vns({parent_code}, {var_key}, {item}, {count}, {length}, {fe})"
        self.virtual[target] = (keys, build)
        chain = self.chains.get(parent)
        if chain is not None:
            self.chains[target] = ((target, *chain[0]), chain[1])
        else:
            self.chains[target] = ((target, parent), False)
        self.loop_sequence(depth, seq, length, var_key, iterable)
        if self.fixed_loops:
            self.count_loop(depth, weight, length)
        self.write(depth, f"{count} = 0")
        self.write(depth, f"for {item} in {seq}:")
        self.write(depth + 1, f"{count} += 1")
        if not self.fixed_loops:
            self.count_iteration(depth + 1, weight)
        self.counters.add(count)
        has_next_line = len(self.lines)
        self.write(depth + 1, f"{has_next} = {count} < {length}")
        if uses_foreach and fe not in self.foreach_fields:
            self.write(
                depth + 1,
                f'{fe} = {{"count": {count}, "index": {count} - 1, "hasNext": {has_next}, '
                f'"first": {count} == 1, "last": {count} == {length}}}',
            )
        self.body(node.body, inner, depth + 1, append, main)
        if not any(re.search(rf"\b{has_next}\b", line) for line in self.lines[has_next_line + 1 :]):
            del self.lines[has_next_line]  # (the body never reads it)
        if main:
            self.write(depth + 1, "if len(out) >= _mark:")
            self.write(depth + 2, "_mark = _check_output(out, _state)")

    def loop_sequence(self, depth: int, seq: str, length: str, var_key: str, iterable: str) -> None:
        """`seq, length = _vfor_seq(var_key, iterable)`; a list as foreach_sequence gives it."""
        temp = self.fresh("_t")
        self.write(depth, f"if type({temp} := {iterable}) is list:")
        self.write(depth + 1, f"{seq}, {length} = {temp}, len({temp})")
        self.write(depth, "else:")
        self.write(depth + 1, f"{seq}, {length} = _vfor_seq({var_key}, {temp})")

    def slim_for(
        self,
        node: nodes.For,
        vfor: nodes.Filter,
        scope: _Scope,
        depth: int,
        append: str,
        main: bool,
        weight: int,
    ) -> None:
        """`for _v1 in _v|vfor('x', items)` as a plain loop building `_v1` in place, with
        the loop variables the body names (and the item)."""
        parent_node = vfor.node
        assert isinstance(parent_node, nodes.Name)
        parent = self.expr(parent_node, scope)
        var_name = vfor.args[0].value  # type: ignore[attr-defined]
        var_key = self.value(var_name)
        iterable = self.expr(vfor.args[1], scope)
        named = {
            c.value
            for child in node.body
            for c in child.find_all(nodes.Const)
            if type(c.value) is str
        }
        parent_temp = self.fresh("_p")
        seq, length, count, item, has_next = (self.fresh(p) for p in ("_s", "_n", "_c", "_i", "_h"))
        inner = _Scope(scope, _scope_stores(node.body), False)
        target = self.variable(inner, node.target.name)
        inner.bound[node.target.name] = target
        self.chains.pop(target, None)
        chain = self.chains.get(self.name_var(parent_node, scope))
        if chain is not None:
            self.chains[target] = ((target, *chain[0]), chain[1])
        # the namespace's parent is evaluated first, as the helper's argument
        self.write(depth, f"{parent_temp} = {parent}")
        self.loop_sequence(depth, seq, length, var_key, iterable)
        if self.fixed_loops:
            self.count_loop(depth, weight, length)
        self.write(depth, f"{count} = 0")
        self.write(depth, f"for {item} in {seq}:")
        self.write(depth + 1, f"{count} += 1")
        self.counters.add(count)
        if not self.fixed_loops:
            self.count_iteration(depth + 1, weight)
        self.write(depth + 1, f"{target} = _new_dict(_LNS)")
        self.write(depth + 1, f"{target}.parent = {parent_temp}")
        entries: list[str] = []
        if "velocityCount" in named:
            entries.append(f"{self.value('velocityCount')}: {count}")
        if "velocityHasNext" in named or "foreach" in named:
            self.write(depth + 1, f"{has_next} = {count} < {length}")
        if "velocityHasNext" in named:
            entries.append(f"{self.value('velocityHasNext')}: {has_next}")
        if "foreach" in named:
            entries.append(
                f'{self.value("foreach")}: {{"count": {count}, "index": {count} - 1, '
                f'"hasNext": {has_next}, "first": {count} == 1, "last": {count} == {length}}}'
            )
        entries.append(f"{var_key}: {item}")
        self.write(depth + 1, f"_dict_update({target}, {{{', '.join(entries)}}})")
        # keys no `vset` of the body names keep their value: read from Python variables
        written = {
            f.args[0].value  # type: ignore[attr-defined]
            for child in node.body
            for f in child.find_all(nodes.Filter)
            if f.name == "vset"
        }
        known = {"velocityCount": count, var_name: item}
        if "velocityHasNext" in named or "foreach" in named:
            known["velocityHasNext"] = has_next
        known[var_name] = item
        self.known[target] = {k: v for k, v in known.items() if k not in written}
        if self.written is not None:
            loop_keys = {var_name} | (named & {"velocityCount", "velocityHasNext", "foreach"})
            # a name an outer namespace certainly holds is set there, never here
            held: set[str] = set()
            for outer in chain[0] if chain is not None else ():
                held |= self.present.get(outer, set())
            self.maybe_keys[target] = loop_keys | (self.written - (held - loop_keys))
        self.body(node.body, inner, depth + 1, append, main)
        if main:
            self.write(depth + 1, "if len(out) >= _mark:")
            self.write(depth + 2, "_mark = _check_output(out, _state)")

    def macro(self, node: nodes.Macro, scope: _Scope, depth: int) -> None:
        if (
            len(node.args) != 1
            or node.defaults
            or node.args[0].name in _SPECIAL_NAMES
            or node.name in _SPECIAL_NAMES
            or any(n.name in _SPECIAL_NAMES for n in node.find_all(nodes.Name))
        ):
            raise _Unsupported("macro signature")
        inner = _Scope(scope, _scope_stores(node.body), True)
        param = self.variable(inner, node.args[0].name)
        inner.bound[node.args[0].name] = param
        self.chains[param] = ((param,), False)
        func = self.variable(scope, node.name)
        if func in self.macro_vars or node.name in scope.bound:
            raise _Unsupported("macro redefined")
        self.write(depth, f"def {func}({param}):")
        if self.lazy:
            # only a `vmacro` call not inlined would run it, and none is in a lazy render;
            # the body is still compiled (then dropped): one the fast path cannot compile
            # keeps the template on Jinja, as in an eager render
            mark = len(self.lines)
            self.lazy = False
            try:
                self.function_body(node.body, inner, depth + 1)
            finally:
                self.lazy = True
                del self.lines[mark:]
            self.write(depth + 1, "raise _Bail")
        else:
            self.function_body(node.body, inner, depth + 1)
        scope.bound[node.name] = func
        self.macro_vars.add(func)
        self.macro_nodes[func] = node

    def note_present(self, node: nodes.Node, scope: _Scope) -> None:
        """After a top-level `{% do _v|vset('name', ...) %}` on a root namespace, the
        namespace holds the name for the rest of the render (nothing removes names)."""
        if (
            isinstance(node, nodes.Filter)
            and node.name == "vset"
            and self.env.filters.get("vset") is runtime.v_set
            and isinstance(node.node, nodes.Name)
            and len(node.args) == 2
            and isinstance(node.args[0], nodes.Const)
            and type(node.args[0].value) is str
        ):
            var = self.name_var(node.node, scope)
            if var in self.present:
                self.present[var].add(node.args[0].value)

    def note_macro_def(self, node: nodes.Node, scope: _Scope, depth: int) -> None:
        """After a top-level `{% do _v|vdefmacro('name', _m1, ['a', 'b']) %}` on the root
        namespace: `#name(...)` calls that follow are compiled to a plain function when the
        body is text and argument references only (see `inline_call`)."""
        if not (
            isinstance(node, nodes.Filter)
            and node.name == "vdefmacro"
            and self.env.filters.get("vdefmacro") is runtime.v_def_macro
            and self.env.filters.get("vno") is runtime.v_name_out
            and self.keys_safe
            and isinstance(node.node, nodes.Name)
            and len(node.args) == 3
            and not (node.kwargs or node.dyn_args or node.dyn_kwargs)
        ):
            return
        name, body_ref, arg_list = node.args
        if not (isinstance(name, nodes.Const) and type(name.value) is str):
            return
        key = name.value.lower()
        if key in self.inlined or key in self.inline_banned:
            # a second definition raises at run time: no call after it is inlined
            self.inlined.pop(key, None)
            self.inline_banned.add(key)
            return
        ns = scope.lookup(node.node.name, self.macro_vars | {"_vdata"})
        chain = self.chains.get(ns)
        if chain != ((ns, "_vdata"), True):
            return  # not certainly the root namespace over the data
        if not isinstance(body_ref, nodes.Name):
            return
        func = scope.lookup(body_ref.name, self.macro_vars | {"_vdata"})
        macro = self.macro_nodes.get(func)
        names = _const_list(arg_list)
        if macro is None or names is None or not all(type(n) is str for n in names):
            return
        param = macro.args[0].name
        # each argument name's value: the last one of that name (`dict.update(zip(...))`)
        position = {n: i for i, n in enumerate(names)}
        pieces: list[tuple[bool, str]] = []
        lines: list[str] = []
        counted: list[str] = []
        args = [self.fresh("_a") for _ in names]
        body = list(macro.body)
        weight = _steps_weight(body[0]) if body else None
        if weight is None:
            return
        for out in body[1:]:
            if not isinstance(out, nodes.Output):
                return
            for child in out.nodes:
                literal = _literal_text(child)
                if literal is not None:
                    pieces.append((True, self.value(literal)))
                    continue
                if not (
                    isinstance(child, nodes.Filter)
                    and child.name == "vno"
                    and isinstance(child.node, nodes.Name)
                    and child.node.name == param
                    and len(child.args) == 2
                    and not (child.kwargs or child.dyn_args or child.dyn_kwargs)
                    and all(isinstance(a, nodes.Const) and type(a.value) is str for a in child.args)
                    and child.args[0].value in position  # type: ignore[attr-defined]
                ):
                    return
                arg = args[position[child.args[0].value]]  # type: ignore[attr-defined]
                source = self.value(child.args[1].value)  # type: ignore[attr-defined]
                piece = self.fresh("_s")
                lines.append(
                    f"{piece} = {arg} if type({arg}) is str else "
                    f"_vno_value({arg}, {source}, {self.value(self.max_chars)})"
                )
                pieces.append((True, piece))
                counted.append(f"(len({piece}) if {arg} is not None else 0)")
        func_name = self.fresh("_im")
        text = self.fresh("_x")
        self.write(depth, f"def {func_name}({', '.join(args)}):")
        for line in lines:
            self.write(depth + 1, line)
        joined = "".join("{" + p + "}" for _, p in pieces)
        self.write(depth + 1, f'{text} = f"{joined}"' if pieces else f"{text} = {self.value('')}")
        # FunctionDef.execute and v_name_out's accounting (runtime._count_built): each value,
        # then the whole text.  No piece may pass the output limit (each value is part of
        # the text: checking the text checks them all), and the total work is bounded as
        # the runtime's; the macro body's weight is charged in steps, as its counter would
        count = " + ".join([f"len({text})", *counted])
        cost = self.value(weight)
        if self.lazy:
            # the render's own count (no helper of a lazy render counts)
            limit = self.value(self.max_chars)
            work = self.value(self.max_work)
            steps = self.value(self.max_steps)
            self.write(depth + 1, "nonlocal _pr, _st")
            self.write(depth + 1, f"_pr += {count}")
            self.write(depth + 1, f"if len({text}) > {limit} or _pr > {work}:")
            self.write(depth + 2, f"_produced_limit({limit})")
            self.write(depth + 1, f"_st += {cost}")
            self.write(depth + 1, f"if _st > {steps}:")
            self.write(depth + 2, f"_steps_limit({steps})")
            self.write(depth + 1, f"return {text}")
            self.inlined[key] = (func_name, len(names), ns)
            return
        self.write(depth + 1, "_b = _budget_get()")
        self.write(depth + 1, "if _b is None:")
        self.write(depth + 2, "_no_budget()")
        self.write(depth + 1, f"_b.produced += {count}")
        self.write(
            depth + 1,
            f"if len({text}) > _b.max_output_chars or _b.produced > _b.max_work:",
        )
        self.write(depth + 2, "_produced_limit(_b.max_output_chars)")
        self.write(depth + 1, f"_b.steps += {cost}")
        self.write(depth + 1, "if _b.steps > _b.max_steps:")
        self.write(depth + 2, "_steps_limit(_b.max_steps)")
        self.write(depth + 1, f"return {text}")
        self.inlined[key] = (func_name, len(names), ns)

    def inline_call(self, node: nodes.Filter, scope: _Scope) -> str | None:
        """`_v|vmacro('name', [args])` after an inlinable definition, `_v` a namespace of
        the root's chain (where `ns['#name']` certainly finds that definition)."""
        if not (
            node.name == "vmacro"
            and self.inlined
            and self.env.filters.get("vmacro") is runtime.v_macro
            and isinstance(node.node, nodes.Name)
            and len(node.args) == 2
            and not (node.kwargs or node.dyn_args or node.dyn_kwargs)
            and isinstance(node.args[0], nodes.Const)
            and type(node.args[0].value) is str
        ):
            return None
        inlined = self.inlined.get(node.args[0].value)
        if inlined is None:
            return None
        func_name, count, root = inlined
        chain = self.chains.get(self.name_var(node.node, scope))
        if chain is None or not chain[1] or chain[0][-2:] != (root, "_vdata"):
            return None
        values = node.args[1]
        if isinstance(values, nodes.List):
            items = [self.expr(item, scope) for item in values.items]
        else:
            consts = _const_list(values)
            if consts is None:
                return None
            items = [self.const(v) for v in consts]
        if len(items) != count:
            return None  # execute raises its error
        call = f"{func_name}({''.join(i + ', ' for i in items)})"
        self.inline_calls.add(call)  # (its result is a str)
        return call

    def root_of_data(self, value: nodes.Node, scope: _Scope) -> bool:
        """`_vdata|vroot`, `_vdata` being the render's data (a dict)."""
        return (
            isinstance(value, nodes.Filter)
            and value.name == "vroot"
            and isinstance(value.node, nodes.Name)
            and not (value.args or value.kwargs or value.dyn_args or value.dyn_kwargs)
            and self.env.filters.get("vroot") is runtime.v_root
            and self.name_var(value.node, scope) == "_vdata"
        )

    def note_chain(self, var: str, value: nodes.Node, scope: _Scope) -> None:
        """Record what namespace `var` (assigned once) holds, when it is known."""
        self.chains.pop(var, None)
        if isinstance(value, nodes.Name):
            chain = self.chains.get(scope.lookup(value.name, set()))
            if chain is not None:
                self.chains[var] = chain
        elif (
            isinstance(value, nodes.Filter)
            and value.name == "vroot"
            and isinstance(value.node, nodes.Name)
            and not (value.args or value.kwargs or value.dyn_args or value.dyn_kwargs)
            and self.env.filters.get("vroot") is runtime.v_root
        ):
            chain = self.chains.get(scope.lookup(value.node.name, set()))
            # v_root of plain dict data: a new namespace over it
            if chain is not None and chain[1] and len(chain[0]) == 1:
                self.chains[var] = ((var, *chain[0]), True)

    def statement_expr(self, node: nodes.Node, scope: _Scope) -> str:
        """`{% do %}`: `vset` on a namespace whose chain is known is inlined (the same
        `set_inherited`: into the innermost namespace that has the name, else the own)."""
        if (
            isinstance(node, nodes.Filter)
            and node.name == "vset"
            and self.env.filters.get("vset") is runtime.v_set
            and isinstance(node.node, nodes.Name)
            and len(node.args) == 2
            and not (node.kwargs or node.dyn_args or node.dyn_kwargs)
            and isinstance(node.args[0], nodes.Const)
            and type(node.args[0].value) is str
        ):
            ns = self.expr(node.node, scope)
            chain = self.chains.get(ns)
            if chain is not None and chain[1] and len(chain[0]) > 1:
                names = chain[0][:-1]  # the namespaces (the last one is the data)
                name = node.args[0].value
                key = self.value(name)
                value = self.expr(node.args[1], scope)
                target = names[0]
                for var in reversed(names):
                    if name in self.present.get(var, ()):
                        target = var  # certainly holds it
                        continue
                    maybe = self.maybe_keys.get(var)
                    if maybe is not None and name not in maybe and name[:1] != "#":
                        continue  # never holds it
                    target = f"({var} if {key} in {var} else {target})"
                temp = self.fresh("_t")
                # the value first (as the helper's argument), then the target namespace
                return f"{temp} = {value}; _dict_setitem({target}, {key}, {temp})"
        return self.expr(node, scope)

    # -- inlined lookups ------------------------------------------------------------------
    def lookup_code(self, chain: tuple[tuple[str, ...], bool], key: str, name: str) -> str:
        """`ns[key]` over a known chain, None when missing (complete chains) or None when
        missing or null locally (incomplete chains: only a local hit is certain).
        A loop namespace that is not built holds its keys in Python variables."""
        names, complete = chain
        *inner, tail = names
        if complete and tail == "_vdata" and self.fixed_loops:
            code = self.data_item(key)
        else:
            code = f"{tail}.get({key})" if complete else f"_dict_get({tail}, {key})"
        for var in reversed(inner):
            virtual = self.virtual.get(var)
            if virtual is not None:
                if name in virtual[0]:
                    code = virtual[0][name]
                continue
            known = self.known.get(var)
            if known is not None and name in known:
                code = known[name]  # certainly there, never reassigned
                continue
            if name in self.present.get(var, ()):
                code = f"{var}[{key}]"  # set there before: certainly holds it
                continue
            maybe = self.maybe_keys.get(var)
            if maybe is not None and name not in maybe and name[:1] != "#":
                continue  # never written there
            code = f"({var}[{key}] if {key} in {var} else {code})"
        return code

    def data_item(self, key: str) -> str:
        """The variable holding `_vdata.get(key)`, read when the render starts."""
        var = self.data_items.get(key)
        if var is None:
            var = self.data_items[key] = self.fresh("_g")
        return var

    def text_pure(self, node: nodes.Node, scope: _Scope) -> tuple[str, str] | None:
        """Like `pure`, for a value streamed into an f-string: the condition also holds only
        when the result is a str, a float or a small int (text as it is formatted), so the
        streamed value needs no check of its own. None: no such form (`pure` and `text_of`
        apply)."""
        if not isinstance(node, nodes.Filter) or node.name not in ("vn", "vnt", "vp", "vot", "vqt"):
            return None
        self.text_mode = "text"
        try:
            return self.pure(node, scope, False)
        finally:
            self.text_mode = None

    def text_check(self, temp: str, code: str) -> str:
        # most streamed values are str: that case is decided first, with one type() call
        if code in self.counters:
            return f"({code} < _SMALL)"
        bound = temp if code == temp else f"{temp} := {code}"
        return (
            f"(type({bound}) is str or (type({temp}) is int and "
            f"_NSMALL < {temp} < _SMALL) or type({temp}) is float)"
        )

    def pure(self, node: nodes.Node, scope: _Scope, nonnull: bool) -> tuple[str, str] | None:
        """(condition, variable): when the condition holds (evaluating only dict lookups
        and type checks), the variable holds the helper chain's exact result."""
        if not isinstance(node, nodes.Filter) or node.node is None:
            return None
        if self.text_mode and (
            nonnull
            or node.name
            not in (("vn", "vnt", "vp", "vot", "vqt"), ("vn", "vp"))[self.text_mode == "dict"]
        ):
            return None
        if node.kwargs or node.dyn_args or node.dyn_kwargs:
            return None
        name = node.name
        args = node.args
        if self.env.filters.get(name) is not runtime.FILTERS.get(name):
            return None
        if name in ("vn", "vnt"):
            if len(args) != (1 if name == "vn" else 2) or not isinstance(node.node, nodes.Name):
                return None
            key = args[0]
            if not isinstance(key, nodes.Const) or type(key.value) is not str:
                return None
            if name == "vnt" and not (
                isinstance(args[1], nodes.Const) and type(args[1].value) is str
            ):
                return None
            chain = self.chains.get(self.name_var(node.node, scope))
            if chain is None:
                return None
            lookup = self.lookup_code(chain, self.value(key.value), key.value)
            # a variable (a data item read when the render started, a loop variable) is
            # read as it is; anything else is evaluated once, into a temporary
            temp = lookup if lookup.isidentifier() else self.fresh("_t")
            bound = temp if temp == lookup else f"{temp} := {lookup}"
            # v_name's result (a FunctionDef is never accepted: its text is computed)
            types = "_VALUE" if nonnull or name == "vnt" or not chain[1] else "_VALUE_NONE"
            if self.text_mode == "text":
                # the caller streams it: a str, a float or a small int (the rest: general)
                return self.text_check(temp, lookup), temp
            if self.text_mode == "dict":
                return f"type({bound}) is dict", temp
            return f"type({bound}) in {types}", temp
        if name == "vni":
            # `$name[i]` with a constant int on a list: the item when in range
            if (
                len(args) != 2
                or not isinstance(node.node, nodes.Name)
                or not isinstance(args[0], nodes.Const)
                or type(args[0].value) is not str
                or not isinstance(args[1], nodes.Const)
                or type(args[1].value) is not int
            ):
                return None
            chain = self.chains.get(self.name_var(node.node, scope))
            if chain is None:
                return None
            lookup = self.lookup_code(chain, self.value(args[0].value), args[0].value)
            seq, temp = self.fresh("_t"), self.fresh("_t")
            index = self.value(args[1].value)
            nonnull_check = f" and {temp} is not None" if nonnull else ""
            return (
                f"type({seq} := {lookup}) is list and -len({seq}) <= {index} < len({seq}) "
                f"and (({temp} := {seq}[{index}]) is None or True){nonnull_check}",
                temp,
            )
        if name == "vp":
            if len(args) != 1 or not isinstance(args[0], nodes.Const):
                return None
            if type(args[0].value) is not str:
                return None
            name_value = args[0].value
            field = self.foreach_field(node.node, name_value, scope)
            if field is not None:
                return field
            key = self.value(name_value)
            temp = self.fresh("_t")
            if not nonnull and _plain_property(name_value):
                # v_prop of null is null; of a dict, its item: a missing (or null) item is
                # null too (no dict attribute or shim has that name)
                text_mode = self.text_mode
                if text_mode:
                    # an item read from a dict: a dict's own check (null or anything else
                    # goes the general way)
                    self.text_mode = "dict"
                    try:
                        inner = self.pure(node.node, scope, False)
                    finally:
                        self.text_mode = text_mode
                    if inner is None:
                        return None
                    cond, var = inner
                    if text_mode == "text":
                        check = self.text_check(temp, f"{var}.get({key})")
                    else:
                        check = f"type({temp} := {var}.get({key})) is dict"
                    return f"{cond} and {check}", temp
                inner = self.pure(node.node, scope, False)
                if inner is None:
                    return None
                cond, var = inner
                return (
                    f"{cond} and (type({var}) is dict and "
                    f"(({temp} := {var}.get({key})) is None or True) or "
                    f"{var} is None and (({temp} := None) is None))",
                    temp,
                )
            inner = self.pure(node.node, scope, True)
            if inner is None:
                return None
            cond, var = inner
            return (
                f"{cond} and type({var}) is dict and ({temp} := {var}.get({key})) is not None",
                temp,
            )
        if name == "vc":
            return self.pure_method(node, scope)
        if name in ("vot", "vqt"):
            if len(args) != (1 if name == "vot" else 0):
                return None
            if name == "vot" and not isinstance(args[0], nodes.Const):
                return None
            inner = self.pure(node.node, scope, False)
            if inner is not None:
                cond, var = inner
                if self.text_mode:
                    return cond, var  # (never null: a null goes the general way)
                # a null value renders the reference's own text (`$!`: nothing)
                text = self.const(args[0].value) if name == "vot" else self.value("")  # type: ignore[attr-defined]
                return cond, f"({text} if {var} is None else {var})"
            if self.text_mode:
                return None
            null = self.null_method(node.node, scope)
            if null is not None:
                # the method gives null: the reference's own text (`$!`: nothing)
                text = self.const(args[0].value) if name == "vot" else self.value("")  # type: ignore[attr-defined]
                return null, text
            return None
        return None

    def foreach_field(
        self, node: nodes.Node | None, name: str, scope: _Scope
    ) -> tuple[str, str] | None:
        """`$foreach.name` of a loop whose map is never built (`foreach_fields`): the loop
        variable holding that field (a `$foreach` map is a dict: `.name` is its item)."""
        if not (
            self.foreach_fields
            and isinstance(node, nodes.Filter)
            and node.name == "vn"
            and isinstance(node.node, nodes.Name)
            and len(node.args) == 1
            and isinstance(node.args[0], nodes.Const)
            and node.args[0].value == "foreach"
            and not (node.kwargs or node.dyn_args or node.dyn_kwargs)
            and self.env.filters.get("vn") is runtime.v_name
        ):
            return None
        chain = self.chains.get(self.name_var(node.node, scope))
        if chain is None:
            return None
        fields = self.foreach_fields.get(self.lookup_code(chain, self.value("foreach"), "foreach"))
        if fields is None or name not in fields:
            return None
        if self.text_mode == "text":
            # a count or an index is a small int (below the loop limit); a flag is formatted
            # the general way
            if name not in ("count", "index"):
                return None
            return f"({fields['count']} < _SMALL)", fields[name]
        if self.text_mode == "dict":
            return None  # (never a dict)
        return "True", fields[name]

    def pure_dict_get(self, node: nodes.Filter, scope: _Scope) -> tuple[str, str] | None:
        """`$map.get($key)` on an exact dict without a "get" item: dict.get, with `_invoke`'s
        size checks of the result and of the dict (a null result: the helper's path)."""
        inner = self.pure(node.node, scope, True)  # type: ignore[arg-type]
        key_node = node.args[1].items[0]  # type: ignore[attr-defined]
        key = self.pure(key_node, scope, False)
        if inner is None or key is None:
            return None
        cond, var = inner
        key_cond, key_var = key
        temp = self.fresh("_t")
        limit = self.value(self.max_chars)
        return (
            f"{cond} and type({var}) is dict and {var}.get({self.value('get')}) is None "
            f"and len({var}) <= {limit} and {key_cond} and "
            f"type({temp} := {var}.get({key_var})) in _VALUE and "
            f"(type({temp}) not in _SIZED or len({temp}) <= {limit})",
            temp,
        )

    def null_method(self, node: nodes.Node, scope: _Scope) -> str | None:
        """The condition under which `.name()` on a value is certainly null: a str, and no
        str attribute or Java shim of that name (v_call: `_lookup` gives None)."""
        if not (
            isinstance(node, nodes.Filter)
            and node.name == "vc"
            and self.env.filters.get("vc") is runtime.v_call
            and node.node is not None
            and len(node.args) == 2
            and not (node.kwargs or node.dyn_args or node.dyn_kwargs)
            and isinstance(node.args[0], nodes.Const)
            and _const_list(node.args[1]) == []
        ):
            return None
        method = node.args[0].value
        if (
            type(method) is not str
            or method[:1] in ("_", "")
            or hasattr(str, method)
            or method in runtime.ADDITIONAL_METHODS[str]
        ):
            return None
        inner = self.pure(node.node, scope, True)
        if inner is None:
            return None
        cond, var = inner
        return f"{cond} and type({var}) is str"

    def pure_method(self, node: nodes.Filter, scope: _Scope) -> tuple[str, str] | None:
        """`.size()`/`.length()` and plain str methods without arguments on an exact list or
        str: what v_call computes (no item of that name: the attribute, else the shim)."""
        args = node.args
        if len(args) != 2 or not isinstance(args[0], nodes.Const):
            return None
        method = args[0].value
        empty = args[1]
        if method == "get" and isinstance(empty, nodes.List) and len(empty.items) == 1:
            return self.pure_dict_get(node, scope)
        if not (
            (isinstance(empty, nodes.List) and not empty.items)
            or (isinstance(empty, nodes.Const) and empty.value == [])
        ):
            return None
        inner = self.pure(node.node, scope, True)  # type: ignore[arg-type]
        if inner is None:
            return None
        cond, var = inner
        temp = self.fresh("_t")
        if method == "size" and runtime.ADDITIONAL_METHODS[list].get("size") is _LIST_SIZE:
            return f"{cond} and type({var}) is list and ({temp} := len({var})) is not None", temp
        if method == "length" and runtime.ADDITIONAL_METHODS[str].get("length") is _STR_LENGTH:
            return f"{cond} and type({var}) is str and ({temp} := len({var})) is not None", temp
        if method in gate.SHORT_TEXT_METHODS:
            # the gate's own rule for a short text's method without arguments: bounded by the
            # text, covered by the operation's weight
            return (
                f"{cond} and type({var}) is str and len({var}) < {gate.SHORT_TEXT} and "
                f"(({temp} := {var}.{method}()) is not None)",
                temp,
            )
        return None

    def needs_budget(self, tree: nodes.Template, code: str) -> bool:
        """Whether the render function (any branch of it) counts against or reads the
        render's budget: loops, size checks, sandboxed operators, counted helpers, and
        anything that may run a macro or #define (their depth and output are counted)."""
        if self.lazy:
            return False  # the render sets it itself
        if any(f.name in _DEFINERS for f in tree.find_all(nodes.Filter)):
            return True
        used = set(re.findall(r"\b_[A-Za-z_0-9]+\b", code))
        if used & _BUDGET_NAMES:
            return True
        return any(ref in used and name not in _BUDGET_FREE for name, ref in self.filters.items())

    def name_var(self, node: nodes.Name, scope: _Scope) -> str:
        """The variable a namespace name refers to (a virtual loop namespace too)."""
        if node.ctx != "load" or node.name in _SPECIAL_NAMES:
            raise _Unsupported("name")
        return scope.lookup(node.name, self.macro_vars | {"_vdata"})

    # -- expressions ----------------------------------------------------------------------
    def expr(self, node: nodes.Node, scope: _Scope, macro_ok: bool = False) -> str:
        if self.inline and isinstance(node, nodes.Filter):
            fast = self.pure(node, scope, False)
            if fast is not None:
                cond, var = fast
                self.inline = False
                try:
                    slow = self.expr(node, scope)
                finally:
                    self.inline = True
                return f"({var} if {cond} else {slow})"
        if isinstance(node, nodes.Name):
            if node.ctx != "load" or node.name in _SPECIAL_NAMES:
                raise _Unsupported("name")
            var = scope.lookup(node.name, self.macro_vars | {"_vdata"})
            if var in self.macro_vars and not macro_ok:
                raise _Unsupported("macro used as a value")
            virtual = self.virtual.get(var)
            if virtual is not None:
                return virtual[1]  # a helper is given the namespace: built now
            return var
        if isinstance(node, nodes.Const):
            return self.const(node.value)
        if isinstance(node, nodes.List):
            return "[" + "".join(self.expr(i, scope) + ", " for i in node.items) + "]"
        if isinstance(node, nodes.Tuple):
            if node.ctx != "load":
                raise _Unsupported("tuple")
            return "(" + "".join(self.expr(i, scope) + ", " for i in node.items) + ")"
        if isinstance(node, nodes.Dict):
            return (
                "{"
                + "".join(
                    f"{self.expr(p.key, scope)}: {self.expr(p.value, scope)}, " for p in node.items
                )
                + "}"
            )
        if isinstance(node, nodes.Filter):
            if node.node is None or node.kwargs or node.dyn_args or node.dyn_kwargs:
                raise _Unsupported("filter form")
            if node.name == "vmacro":
                call = self.inline_call(node, scope)
                if call is not None:
                    return call
                if self.lazy:
                    raise _NotLazy  # FunctionDef.execute counts through the budget
            if self.lazy and node.name in _PRODUCERS:
                return self.lazy_produced(node, scope)
            literal = self.literal_range(node)
            if literal is not None:
                return literal
            func = self.filter(node.name)
            takes = node.name in _MACRO_TAKERS
            args = [self.expr(node.node, scope)] + [
                self.expr(a, scope, macro_ok=takes) for a in node.args
            ]
            call = f"{func}({', '.join(args)})"
            return call if node.name in _BUDGET_FREE else self.budgeted(call)
        if isinstance(node, nodes.Test):
            if node.name != "none" or node.args or node.kwargs or node.dyn_args or node.dyn_kwargs:
                raise _Unsupported("test")
            if self.env.tests.get("none") is not _JINJA_TEST_NONE:
                raise _Unsupported("test none replaced")
            return f"({self.expr(node.node, scope)} is None)"
        if isinstance(node, nodes.Compare):
            # as the environment's code generator: comparing big values is charged their size
            if (
                len(node.ops) == 1
                and node.ops[0].op not in ("in", "notin")
                and (_small_const(node.expr) or _small_const(node.ops[0].expr))
                and node.ops[0].op in _COMPARE
            ):
                # against a number or a short text: decided without scanning either side
                left = self.expr(node.expr, scope)
                right = self.expr(node.ops[0].expr, scope)
                return f"({left} {_COMPARE[node.ops[0].op]} {right})"
            code = "(" + self.compared(node.expr, scope)
            for op in node.ops:
                symbol = _COMPARE.get(op.op)
                if symbol is None:
                    raise _Unsupported("compare")
                code += f" {symbol} {self.compared(op.expr, scope)}"
            return code + ")"
        if isinstance(node, nodes.CondExpr):
            if node.expr2 is None:
                raise _Unsupported("if without else")
            expr1 = self.expr(node.expr1, scope)
            test = self.expr(node.test, scope)
            expr2 = self.expr(node.expr2, scope)
            return f"({expr1} if {test} else {expr2})"
        if isinstance(node, nodes.Concat):
            items = "".join(self.expr(n, scope) + ", " for n in node.nodes)
            # the environment's code generator routes `~` through `bounded_concat`
            return self.budgeted(f"_concat(({items}), False)")
        if isinstance(node, nodes.BinExpr):
            op = node.operator
            left = self.expr(node.left, scope)
            right = self.expr(node.right, scope)
            if op in self.env.intercepted_binops:
                slow = self.budgeted(f"_call_binop(None, {self.value(op)}, {{a}}, {{b}})")
                if op in ("+", "*") and self.env.call_binop.__func__ is _SANDBOX_CALL_BINOP:
                    # small numbers: the sandbox's checks never apply (both operands are
                    # evaluated first either way); big integers take the checked path
                    a, b, r = self.fresh("_t"), self.fresh("_t"), self.fresh("_t")
                    if op == "+":
                        return (
                            f"({r} if (type({a} := {left}) in _NUM) & "
                            f"(type({b} := {right}) in _NUM) and "
                            f"_NSMALL < ({r} := {a} + {b}) < _SMALL else {slow.format(a=a, b=b)})"
                        )
                    return (
                        f"({a} * {b} if ((type({a} := {left}) is float) or "
                        f"(type({a}) is int and _NSMALL < {a} < _SMALL)) & "
                        f"((type({b} := {right}) is float) or "
                        f"(type({b}) is int and _NSMALL < {b} < _SMALL)) "
                        f"else {slow.format(a=a, b=b)})"
                    )
                return slow.format(a=left, b=right)
            if op not in ("+", "-", "*", "/", "//", "%", "**", "and", "or"):
                raise _Unsupported("operator")
            return f"({left} {op} {right})"
        if isinstance(node, nodes.UnaryExpr):
            op = node.operator
            if op in self.env.intercepted_unops or op not in ("not", "-", "+"):
                raise _Unsupported("unary operator")
            spelled = "not " if op == "not" else op
            return f"({spelled}{self.expr(node.node, scope)})"
        raise _Unsupported(type(node).__name__)

    def const(self, value: Any) -> str:
        if value is None:
            return "None"
        if value is True:
            return "True"
        if value is False:
            return "False"
        kind = type(value)
        if kind is float and not math.isfinite(value):
            raise _Unsupported("non-finite float")  # Jinja writes `inf`: a NameError
        if kind in (int, float, str, range):
            return self.value(value)
        if kind is complex:
            if not (math.isfinite(value.real) and math.isfinite(value.imag)):
                raise _Unsupported("non-finite complex")
            return self.value(value)
        # Jinja writes containers as literals: a fresh object every evaluation
        if kind is list:
            return "[" + "".join(self.const(v) + ", " for v in value) + "]"
        if kind is tuple:
            return "(" + "".join(self.const(v) + ", " for v in value) + ")"
        if kind is dict:
            return (
                "{" + "".join(f"{self.const(k)}: {self.const(v)}, " for k, v in value.items()) + "}"
            )
        raise _Unsupported(f"constant of type {kind.__name__}")


# filters that never write into a namespace (only a #define's body run by them could)
_READ_ONLY = frozenset(
    {
        "vn",
        "vnt",
        "vno",
        "vni",
        "vp",
        "vpi",
        "vc",
        "vi",
        "vot",
        "vqt",
        "vo",
        "vq",
        "vs",
        "valt",
        "vand",
        "vor",
        "vdiv",
        "vrange",
        "vfor",
        "_bounded_loop",
    }
)
# helpers that never read the render's budget (given no macro or #define exists)
_BUDGET_FREE = frozenset(
    {
        "vroot",
        "vn",
        "vnt",
        "vni",
        "vp",
        "vpi",
        "vi",
        "vot",
        "vqt",
        "vand",
        "vor",
        "vdiv",
        "vset",
        "vdefmacro",
    }
)
_DEFINERS = frozenset({"vdefine", "vdefmacro", "vmacro", "vblock", "vevaluate"})
# generated-code names that use the budget
_BUDGET_NAMES = frozenset(
    {
        "_check_size",
        "_concat",
        "_compared",
        "_charge",
        "_no_budget",
        "_call_binop",
        "_vfor_bounded",
        "_vfor_seq",
        "_budget_get",
        "_check_output",
        "_vns",
        "_bud",
    }
)
# helpers counting the text they give against `budget.produced`
_PRODUCERS = frozenset({"vo", "vq", "vs", "valt", "vno"})
# filters reading a namespace by name (their first argument)
_NAME_READERS = frozenset({"vn", "vnt", "vno", "vni"})
# str methods without arguments that v_call runs as they are (then checks the size)
_LIST_SIZE = runtime.ADDITIONAL_METHODS[list]["size"]
_STR_LENGTH = runtime.ADDITIONAL_METHODS[str]["length"]

# results of a namespace lookup that are certainly final (a FunctionDef renders its body)
_VALUE_TYPES = frozenset({str, int, float, bool, dict, list})
# values whose text is `str(value)`, short and never measured
_SCALAR_TYPES = frozenset({int, float, bool, type(None)})


def _small_const(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Const) and (
        type(node.value) in _SCALAR_TYPES or (type(node.value) is str and len(node.value) < 4096)
    )


def _literal_text(node: nodes.Node) -> str | None:
    """The text of literal output (template data or a literal constant); None for anything
    that is evaluated at render time."""
    if isinstance(node, nodes.TemplateData):
        return node.data
    if isinstance(node, nodes.Const) and type(node.value) in (str, int, float, bool, type(None)):
        if type(node.value) is float and not math.isfinite(node.value):
            return None
        return str(node.value)
    return None


def _loop_weight(node: nodes.Node) -> int | None:
    """The body weight of `iterable|_bounded_loop(weight)` (the environment wraps every loop)."""
    if (
        isinstance(node, nodes.Filter)
        and node.name == "_bounded_loop"
        and len(node.args) == 1
        and isinstance(node.args[0], nodes.Const)
        and type(node.args[0].value) is int
        and not (node.kwargs or node.dyn_args or node.dyn_kwargs)
    ):
        return node.args[0].value
    return None


def _steps_weight(node: nodes.Node) -> int | None:
    """The weight of the `{% do weight|_steps %}` counter at the top of a macro body."""
    if (
        isinstance(node, nodes.ExprStmt)
        and isinstance(node.node, nodes.Filter)
        and node.node.name == "_steps"
        and isinstance(node.node.node, nodes.Const)
        and type(node.node.node.value) is int
        and not (node.node.args or node.node.kwargs or node.node.dyn_args or node.node.dyn_kwargs)
    ):
        return node.node.node.value
    return None


_JINJA_TEST_NONE: Any = None
_SANDBOX_CALL_BINOP: Any = None


def may_mutate(tree: nodes.Template) -> bool:
    """The template calls a helper that can change the data: renders work on a copy.

    Method calls (`vc`) only count when the method name is not a constant known to leave
    its object unchanged.
    """
    for node in tree.find_all(nodes.Filter):
        if node.name in runtime.MUTATING_FILTERS:
            return True
        if node.name in ("vp", "vpi") and (
            not node.args
            or not isinstance(node.args[0], nodes.Const)
            or node.args[0].value in runtime.MUTATING_METHODS
        ):
            # `$l.pop` held as a value can be called later under any name (`$h.f()`)
            return True
        if node.name in runtime.METHOD_FILTERS:
            name = node.args[0] if node.args else None
            if (
                not isinstance(name, nodes.Const)
                or not isinstance(name.value, str)
                or name.value in runtime.MUTATING_METHODS
                or node.kwargs
                or node.dyn_args
                or node.dyn_kwargs
            ):
                return True
    return False


def compile_fast(
    tree: nodes.Template,
    env: Any,
    limits: RenderLimits,
    budget_class: Any = None,
) -> Callable[[Any], str] | None:
    """The template's render function, or None when the tree uses anything unsupported.

    Call it with the render's budget set (as Jinja's code would run) unless its
    `__needs_budget__` is false; it returns the text (the caller checks its length) or
    raises (the caller then renders through Jinja, unless it is a TemplateLimitError: the
    same budget counted the same way).  With `budget_class`, templates without macros,
    defines or generic loops get render functions that count their loop iterations and steps
    themselves, and call no helper that reads a budget (none is set for them).  Nothing of
    the template is evaluated here.
    """
    if budget_class is not None:
        lazy = _compile_fast(tree, env, limits, budget_class)
        if lazy is not _NOT_LAZY:
            return lazy  # type: ignore[return-value]
    result = _compile_fast(tree, env, limits, None)
    return None if result is _NOT_LAZY else result  # type: ignore[return-value]


_NOT_LAZY: Any = object()
# ints inlined (in output and arithmetic) lie strictly between -_SMALL and _SMALL: one
# machine digit, which the interpreter compares without a generic call; others go through
# the helpers
_SMALL = (1 << 30) - 1
# marks the code of an output value whose text is checked (`_Compiler.streamed`)
_STREAMED = "#streamed#"
# the counters the environment adds to a tree, as the environment's code calls them
_INTERNAL = {
    BOUNDED_LOOP: BoundedEnvironment.bounded_loop,
    STEPS: BoundedEnvironment.charge,
}


def _compile_fast(tree: nodes.Template, env: Any, limits: RenderLimits, budget_class: Any) -> Any:
    global _SANDBOX_CALL_BINOP
    if env.autoescape or env.is_async:
        return None
    if _SANDBOX_CALL_BINOP is None:
        _SANDBOX_CALL_BINOP = BoundedEnvironment.call_binop
    compiler = _Compiler(
        env,
        limits.max_output_chars,
        budget_class,
        limits.max_loop_iterations if budget_class is not None else 0,
        limits.max_steps,
        limits.max_work,
        limits.max_loop_iterations,
    )
    try:
        compiler.template(tree)
        code = "\n".join(compiler.lines) + "\n"
        namespace = compiler.namespace
        exec(compile(code, runtime.FAST_TEMPLATE_FILENAME, "exec"), namespace)  # noqa: S102
    except _NotLazy:
        return _NOT_LAZY
    except Exception:  # noqa: BLE001 - unsupported (or too deep for Python): Jinja renders it
        return None
    render: Callable[[Any], str] = namespace["render"]
    render.__fast_source__ = code  # type: ignore[attr-defined]
    render.__needs_budget__ = compiler.needs_budget(tree, code)  # type: ignore[attr-defined]
    # a template of text alone: what it gives any plain dict (None: it evaluates something)
    constant = None
    if compiler.lines[3:] == [f"    return {name}" for name in compiler.values.values()]:
        constant = namespace[compiler.lines[3].split()[-1]]
    render.__constant__ = constant if type(constant) is str else None  # type: ignore[attr-defined]
    return render


def _init() -> None:
    global _JINJA_TEST_NONE
    from jinja2.tests import test_none

    _JINJA_TEST_NONE = test_none


_init()
