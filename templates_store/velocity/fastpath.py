"""Fast path: the Jinja text of a lean template compiled to one plain Python function.

The stored template stays Jinja.  `compile_fast` takes the syntax tree that the sandboxed
environment's own parser produced (after Jinja's compiler has constant-folded it, exactly
as it does for its own code) and, when every node is of a kind handled here, generates a
plain function `render(data) -> str` that evaluates the same expressions in the same
order with the same helpers:

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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.optimizer import Optimizer

from . import runtime
from .errors import TemplateLimitError, TemplateRenderError

__all__ = ["compile_fast"]

# Jinja's code generator runs its constant folder on these before generating them
_FOLDED = (
    nodes.Concat,
    nodes.Compare,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Filter,
    nodes.Test,
    nodes.CondExpr,
    nodes.Call,
    nodes.BinExpr,
    nodes.UnaryExpr,
)
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
_CHECK_EVERY = 64


class _Unsupported(Exception):
    pass


def _vfor_bounded(ns: Any, var: str, iterable: Any) -> Iterator[Any]:
    """`_bounded_loop(v_foreach(ns, var, iterable))` fused: the same namespaces, each
    iteration counted twice against the loop budget like the two generators do."""
    if iterable is None:
        return
    if hasattr(iterable, "keys"):
        iterable = iterable.keys()
    try:
        iter(iterable)
    except TypeError:
        raise TemplateRenderError(
            f"value for ${var} is not iterable in #foreach: {iterable}"
        ) from None
    length = len(iterable)
    budget = runtime.current_budget()
    limit = budget.max_loop_iterations if budget is not None else 0
    namespace = runtime.LocalNamespace
    update = dict.update
    counter = 1
    for item in iterable:
        if budget is not None:
            budget.iterations += 2
            if budget.iterations > limit:
                raise TemplateLimitError(f"loop iteration limit exceeded ({limit})")
        local = namespace(ns)
        has_next = counter < length
        update(
            local,
            {
                "velocityCount": counter,
                "velocityHasNext": has_next,
                "foreach": {
                    "count": counter,
                    "index": counter - 1,
                    "hasNext": has_next,
                    "first": counter == 1,
                    "last": counter == length,
                },
                var: item,
            },
        )
        yield local
        counter += 1


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


class _Compiler:
    def __init__(self, env: Any, max_chars: int) -> None:
        self.env = env
        self.eval_ctx = nodes.EvalContext(env)
        self.optimizer = Optimizer(env)
        self.namespace: dict[str, Any] = {
            "__builtins__": {"str": str, "len": len, "type": type, "dict": dict},
            "_join": "".join,
            "_str_join": _str_join,
            "_check_size": runtime.check_size,
            "_call_binop": env.call_binop,
            "_vfor_bounded": _vfor_bounded,
            "_check_output": _output_checker(max_chars),
            "_dict_get": dict.get,
            "_dict_setitem": dict.__setitem__,
            "_NUM": frozenset({int, float}),
            "_VALUE": _VALUE_TYPES,
            "_VALUE_NONE": _VALUE_TYPES | {type(None)},
        }
        # namespace variables whose lookup chain is known: var -> (vars from the innermost
        # namespace out, whether the last one is the (plain dict) data)
        self.chains: dict[str, tuple[tuple[str, ...], bool]] = {"_vdata": (("_vdata",), True)}
        self.assign_counts: dict[str, int] = {}
        self.inline = True
        self.values: dict[tuple[type, str], str] = {}
        self.variables: dict[tuple[int, str], str] = {}
        self.scopes: list[_Scope] = []
        self.filters: dict[str, str] = {}
        self.lines: list[str] = []
        self.counter = 0
        self.macro_vars: set[str] = set()

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
            func = self.env.filters.get(name)
            if func is None or not (name in runtime.FILTERS or name == "_bounded_loop"):
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
        loops = tree.find(nodes.For) is not None
        if loops:
            self.write(1, "out = []")
            self.write(1, "_append = out.append")
            self.write(1, "_state = [0, 0]")
            self.write(1, f"_mark = {_CHECK_EVERY}")
            self.body(tree.body, scope, 1, "_append", main=True, toplevel=True)
            self.write(1, "return _join(out)")
        else:
            self.function_body(tree.body, scope, 1, toplevel=True)

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
        return (
            'f"' + "".join("{(" + p + ")" + ("}" if is_str else "!s}") for is_str, p in parts) + '"'
        )

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
        code = [p if is_str else f"str({p})" for is_str, p in parts]
        if len(code) == 1:
            return code[0]
        return "_join((" + ", ".join(code) + ",))"

    def output_parts(self, node: nodes.Output, scope: _Scope) -> list[tuple[bool, str]]:
        parts: list[tuple[bool, str]] = []
        consts: list[str] = []
        for child in node.nodes:
            # as Jinja's code generator: constant children are rendered at compile time
            try:
                const = child.as_const(self.eval_ctx)
                text = str(const)
            except Exception:  # noqa: BLE001 - Jinja evaluates these at render time
                if consts:
                    parts.append((True, self.value("".join(consts))))
                    consts = []
                parts.append((False, self.expr(child, scope)))
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
                value = self.expr(node.node, scope)
                var = self.variable(scope, name)
                self.write(depth, f"{var} = {value}")
                scope.bound[name] = var
                self.chains.pop(var, None)
                if self.assign_counts.get(name) == 1:
                    self.note_chain(var, node.node, scope)
            elif isinstance(node, nodes.ExprStmt):
                self.write(depth, self.statement_expr(node.node, scope))
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
        if (
            isinstance(iterable, nodes.Filter)
            and iterable.name == "_bounded_loop"
            and not (iterable.args or iterable.kwargs or iterable.dyn_args or iterable.dyn_kwargs)
            and isinstance(iterable.node, nodes.Filter)
            and iterable.node.name == "vfor"
            and iterable.node.node is not None
            and len(iterable.node.args) == 2
            and not (iterable.node.kwargs or iterable.node.dyn_args or iterable.node.dyn_kwargs)
            and self.env.filters.get("vfor") is runtime.v_foreach
            and self.env.filters.get("_bounded_loop") is not None
        ):
            vfor = iterable.node
            self.filter("_bounded_loop")  # same availability checks as the generic path
            self.filter("vfor")
            args = [self.expr(vfor.node, scope)] + [self.expr(a, scope) for a in vfor.args]
            source = f"_vfor_bounded({', '.join(args)})"
        else:
            source = self.expr(iterable, scope)
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
        self.function_body(node.body, inner, depth + 1)
        scope.bound[node.name] = func
        self.macro_vars.add(func)

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
                key = self.value(node.args[0].value)
                value = self.expr(node.args[1], scope)
                target = names[0]
                for var in reversed(names):
                    target = f"({var} if {key} in {var} else {target})"
                temp = self.fresh("_t")
                # the value first (as the helper's argument), then the target namespace
                return f"{temp} = {value}; _dict_setitem({target}, {key}, {temp})"
        return self.expr(node, scope)

    # -- inlined lookups ------------------------------------------------------------------
    def lookup_code(self, chain: tuple[tuple[str, ...], bool], key: str) -> str:
        """`ns[key]` over a known chain, None when missing (complete chains) or None when
        missing or null locally (incomplete chains: only a local hit is certain)."""
        names, complete = chain
        *inner, tail = names
        code = f"{tail}.get({key})" if complete else f"_dict_get({tail}, {key})"
        for var in reversed(inner):
            code = f"({var}[{key}] if {key} in {var} else {code})"
        return code

    def pure(self, node: nodes.Node, scope: _Scope, nonnull: bool) -> tuple[str, str] | None:
        """(condition, variable): when the condition holds (evaluating only dict lookups
        and type checks), the variable holds the helper chain's exact result."""
        if not isinstance(node, nodes.Filter) or node.node is None:
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
            chain = self.chains.get(self.expr(node.node, scope))
            if chain is None:
                return None
            temp = self.fresh("_t")
            lookup = self.lookup_code(chain, self.value(key.value))
            # v_name's result (a FunctionDef is never accepted: its text is computed)
            types = "_VALUE" if nonnull or name == "vnt" or not chain[1] else "_VALUE_NONE"
            return f"type({temp} := {lookup}) in {types}", temp
        if name == "vp":
            if len(args) != 1 or not isinstance(args[0], nodes.Const):
                return None
            if type(args[0].value) is not str:
                return None
            inner = self.pure(node.node, scope, True)
            if inner is None:
                return None
            cond, var = inner
            temp = self.fresh("_t")
            key = self.value(args[0].value)
            return (
                f"{cond} and type({var}) is dict and ({temp} := {var}.get({key})) is not None",
                temp,
            )
        if name in ("vot", "vqt"):
            if len(args) != (1 if name == "vot" else 0):
                return None
            if name == "vot" and not isinstance(args[0], nodes.Const):
                return None
            return self.pure(node.node, scope, True)
        return None

    # -- expressions ----------------------------------------------------------------------
    def expr(self, node: nodes.Node, scope: _Scope, macro_ok: bool = False) -> str:
        if isinstance(node, _FOLDED):
            folded = self.optimizer.visit(node, self.eval_ctx)
            if folded != node:
                return self.expr(folded, scope, macro_ok)
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
            func = self.filter(node.name)
            takes = node.name in _MACRO_TAKERS
            args = [self.expr(node.node, scope)] + [
                self.expr(a, scope, macro_ok=takes) for a in node.args
            ]
            return f"{func}({', '.join(args)})"
        if isinstance(node, nodes.Test):
            if node.name != "none" or node.args or node.kwargs or node.dyn_args or node.dyn_kwargs:
                raise _Unsupported("test")
            if self.env.tests.get("none") is not _JINJA_TEST_NONE:
                raise _Unsupported("test none replaced")
            return f"({self.expr(node.node, scope)} is None)"
        if isinstance(node, nodes.Compare):
            code = "(" + self.expr(node.expr, scope)
            for op in node.ops:
                symbol = _COMPARE.get(op.op)
                if symbol is None:
                    raise _Unsupported("compare")
                code += f" {symbol} {self.expr(op.expr, scope)}"
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
            # the environment's code generator routes `~` through `_bounded_concat`
            return f"_check_size(_str_join(({items})))"
        if isinstance(node, nodes.BinExpr):
            op = node.operator
            left = self.expr(node.left, scope)
            right = self.expr(node.right, scope)
            if op in self.env.intercepted_binops:
                slow = f"_call_binop(None, {self.value(op)}, {{a}}, {{b}})"
                if op in ("+", "*") and self.env.call_binop.__func__ is _SANDBOX_CALL_BINOP:
                    # numbers: the sandbox's checks never apply (both operands evaluated)
                    a, b = self.fresh("_t"), self.fresh("_t")
                    return (
                        f"({a} {op} {b} if (type({a} := {left}) in _NUM) & "
                        f"(type({b} := {right}) in _NUM) else {slow.format(a=a, b=b)})"
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


# results of a namespace lookup that are certainly final (a FunctionDef renders its body)
_VALUE_TYPES = frozenset({str, int, float, bool, dict, list})


def _str_join(seq: Any) -> str:
    return "".join(map(str, seq))


_JINJA_TEST_NONE: Any = None
_SANDBOX_CALL_BINOP: Any = None


def compile_fast(tree: nodes.Template, env: Any, max_chars: int) -> Callable[[Any], str] | None:
    """The template's render function, or None when the tree uses anything unsupported.

    Call it with the render's budget set (as Jinja's code would run); it returns the text
    (the caller checks its length) or raises (the caller then renders through Jinja).
    """
    global _SANDBOX_CALL_BINOP
    if env.autoescape or env.finalize is not None or env.is_async:
        return None
    if _SANDBOX_CALL_BINOP is None:
        from .engine import VelocityEnvironment

        _SANDBOX_CALL_BINOP = VelocityEnvironment.call_binop
    compiler = _Compiler(env, max_chars)
    try:
        compiler.template(tree)
        code = "\n".join(compiler.lines) + "\n"
        namespace = compiler.namespace
        exec(compile(code, "<fast template>", "exec"), namespace)  # noqa: S102
    except Exception:  # noqa: BLE001 - unsupported (or too deep for Python): Jinja renders it
        return None
    render: Callable[[Any], str] = namespace["render"]
    render.__fast_source__ = code  # type: ignore[attr-defined]
    return render


def _init() -> None:
    global _JINJA_TEST_NONE
    from jinja2.tests import test_none

    _JINJA_TEST_NONE = test_none


_init()
