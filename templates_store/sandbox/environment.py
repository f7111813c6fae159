"""The bounded Jinja environments.

`BoundedEnvironment` is the common base: Jinja's immutable sandbox with every attribute, item
and call routed through `gate`, arithmetic and `~` bounded before they allocate, output turned
into text by `text.to_text`, loops and macro bodies charged their static weight in steps, and
nothing evaluated at compile time (no optimizer, no constant output folding; any helper that
still ran at compile time would find no budget and refuse).

`TenantEnvironment` renders tenant-authored Jinja: Jinja's own filters, tests and globals, each
allowlisted and bounded, and none of the legacy helpers. Converted legacy templates render in
`templates_store.velocity.engine.ConvertedEnvironment`, which has the helpers and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, operators
from jinja2.defaults import DEFAULT_TESTS
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.filters import make_attrgetter, sync_do_slice
from jinja2.runtime import Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, pass_environment, pass_eval_context
from markupsafe import Markup

from . import gate
from .budget import (
    ITEM_BYTES,
    RenderLimits,
    _budget,
    _outside,
    charge_steps,
    check_size,
    reserve,
    steps_exceeded,
)
from .errors import TemplateLimitError, TemplateSecurityError, TemplateSyntaxError
from .text import charge_sort, charge_tree, measure_text, to_text, without_addresses

__all__ = ["BoundedEnvironment", "TenantEnvironment", "bounded_loop", "MACRO_CALL_STEPS"]

# the most tokens (names, operators, literals, text runs) a template may have: compiling one
# this size takes about half a second here (the largest legacy template has 3,600)
MAX_TEMPLATE_TOKENS = 10_000

# steps charged for a macro call on top of its body's weight (argument binding, frame)
MACRO_CALL_STEPS = 10


# The counters the environment adds to a template's tree (never filters a template can name:
# the generated code calls the environment's own functions)
BOUNDED_LOOP = "_bounded_loop"
STEPS = "_steps"
LOOP_ITEM = "_loop_item"
INTERNAL = {BOUNDED_LOOP: "bounded_loop", STEPS: "charge", LOOP_ITEM: "count_loop_item"}


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with `~` and comparisons bounded, and no output constant folding
    beyond literal template text."""

    def visit_Filter(self, node: nodes.Filter, frame: Frame) -> None:  # noqa: N802
        internal = INTERNAL.get(node.name)
        if internal is None:
            super().visit_Filter(node, frame)
            return
        self.write(f"environment.{internal}(")
        self.visit(node.node, frame)
        for arg in node.args:
            self.write(", ")
            self.visit(arg, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("), context.eval_ctx.autoescape)")

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:  # noqa: N802
        # comparing or searching big values scans them: each operand is charged its size
        self.write("(environment.compared(")
        self.visit(node.expr, frame)
        self.write(")")
        for op in node.ops:
            self.write(f" {operators[op.op]} environment.compared(")
            self.visit(op.expr, frame)
            self.write(")")
        self.write(")")

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:  # noqa: N802
        # Jinja writes slices as plain subscripts: here they go through the environment's
        # getitem too (the gate), which knows a slice's size before it is built
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.getitem(")
        self.visit(node.node, frame)
        self.write(", slice(")
        for index, part in enumerate((node.arg.start, node.arg.stop, node.arg.step)):
            if index:
                self.write(", ")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write("))")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:  # noqa: N802
        self.write("{")
        for idx, item in enumerate(node.items):
            if idx:
                self.write(", ")
            self.write("environment.hashed(")
            self.visit(item.key, frame)
            self.write("): ")
            self.visit(item.value, frame)
        self.write("}")

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)


def _op_nodes() -> tuple[type, ...]:
    return (
        nodes.Filter,
        nodes.Test,
        nodes.Call,
        nodes.Getattr,
        nodes.Getitem,
        nodes.BinExpr,
        nodes.UnaryExpr,
        nodes.Compare,
        nodes.Concat,
        nodes.CondExpr,
        nodes.List,
        nodes.Dict,
        nodes.Tuple,
        nodes.Slice,
    )


_OPS = _op_nodes()


def static_weight(body: Iterable[nodes.Node]) -> int:
    """The number of operations one run of `body` may evaluate, loops and macro bodies inside
    it excluded (each is charged on its own, per iteration or per call)."""
    count = 0
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.For):
            stack.append(node.iter)
            stack.extend(node.else_)
            continue
        if isinstance(node, (nodes.Macro, nodes.CallBlock)):
            if isinstance(node, nodes.CallBlock):
                stack.append(node.call)
            stack.extend(node.defaults)
            continue
        if isinstance(node, _OPS):
            count += 1
        elif isinstance(node, nodes.Output):
            count += len(node.nodes)
        stack.extend(node.iter_child_nodes())
    return count


def bounded_loop(iterable: Any, weight: int = 0) -> Any:
    """Every `for` iterates through here: each item counts one loop iteration and the loop
    body's weight in steps."""
    budget = _budget.get()
    if budget is None:
        _outside()
    max_iterations = budget.max_loop_iterations
    max_steps = budget.max_steps
    cost = weight
    for item in iterable:
        budget.iterations += 1
        if budget.iterations > max_iterations:
            raise TemplateLimitError(f"loop iteration limit exceeded ({max_iterations})")
        budget.steps += cost
        if budget.steps > max_steps:
            steps_exceeded(budget)
        yield item


def charge(weight: int) -> str:
    """The counter at the top of a macro body: one call's steps."""
    charge_steps(weight)
    return ""


def count_loop_item(weight: int) -> str:
    """The counter at the top of a recursive loop's body: one iteration and its steps."""
    budget = _budget.get()
    if budget is None:
        _outside()
    budget.iterations += 1
    if budget.iterations > budget.max_loop_iterations:
        raise TemplateLimitError(f"loop iteration limit exceeded ({budget.max_loop_iterations})")
    budget.steps += weight
    if budget.steps > budget.max_steps:
        steps_exceeded(budget)
    return ""


def bounded_range(*args: int) -> range:
    rng = range(*args)
    budget = _budget.get()
    if budget is None:
        _outside()
    if len(rng) > budget.max_loop_iterations:
        raise TemplateLimitError(
            f"range() larger than the loop limit ({budget.max_loop_iterations})"
        )
    charge_steps(1)
    return rng


class TemplateGlobal:
    """A global function of the tenant environment: callable, with nothing to look into and
    nothing of Python's to print (`{{ dict }}` shows `<dict>`, not a class)."""

    __slots__ = ("name", "func")

    def __init__(self, name: str, func: Callable[..., Any]) -> None:
        self.name = name
        self.func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.name}>"


RANGE = TemplateGlobal("range", bounded_range)
DICT = TemplateGlobal("dict", dict)
NAMESPACE = TemplateGlobal("namespace", Namespace)
for _global in (RANGE, DICT, NAMESPACE):
    gate.register_callable(_global)
gate.register_type(TemplateGlobal)


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """See the module docstring. Subclasses choose filters, tests and globals (allowlists)."""

    code_generator_class = BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})
    # whether values print as Python prints them, memory addresses included (converted legacy
    # templates, as airspeed did); otherwise a method or an iterator prints as `<method
    # upper>`, `<generator>` (text.without_addresses)
    python_reprs = False
    # converted legacy templates may call pure special methods (`$s.__len__()`)
    allow_specials = False
    # steps one evaluated operation costs, and one loop iteration on top of its body's
    # operations (a step is about 0.4 microseconds of this machine's time: the tenant
    # environment's operations are sandboxed Jinja calls, several times dearer than the
    # converted environment's helpers in its compiled fast path)
    step_cost = 2
    iteration_cost = 3

    def __init__(
        self,
        *,
        autoescape: bool,
        limits: RenderLimits,
        filters: dict[str, Callable[..., Any]],
        tests: dict[str, Callable[..., Any]],
        global_values: dict[str, Any],
        extensions: list[str],
    ) -> None:
        super().__init__(
            autoescape=autoescape,
            keep_trailing_newline=True,
            extensions=extensions,
            cache_size=0,
            auto_reload=False,
            optimized=False,
            finalize=to_text,
        )
        self.limits = limits
        self.filters = dict(filters)
        self.tests = dict(tests)
        self.globals = dict(global_values)

    # -- compile time ------------------------------------------------------------------------
    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # parsing and compiling cost tens of microseconds a token: bounded before either runs
        for tokens, _ in enumerate(self.lex(source), start=1):
            if tokens > MAX_TEMPLATE_TOKENS:
                raise TemplateLimitError(
                    f"template too complex: more than {MAX_TEMPLATE_TOKENS:,} tokens"
                )
        tree = super()._parse(source, name, filename)
        self.check_tree(tree)
        cost = self.step_cost
        for loop in tree.find_all(nodes.For):
            weight = static_weight(loop.body) + static_weight([loop.test] if loop.test else [])
            weight = weight * cost + self.iteration_cost
            if loop.recursive:
                # `loop(children)` (under any name) runs the body on another sequence: each
                # run of the body is counted where it starts
                counter = nodes.ExprStmt(
                    nodes.Filter(nodes.Const(weight), LOOP_ITEM, [], [], None, None)
                )
                counter.set_lineno(loop.lineno)
                loop.body.insert(0, counter)
                continue
            loop.iter = nodes.Filter(loop.iter, BOUNDED_LOOP, [nodes.Const(weight)], [], None, None)
            loop.iter.set_lineno(loop.lineno)
        for block in tree.find_all((nodes.Macro, nodes.CallBlock)):
            weight = (static_weight(block.body) + MACRO_CALL_STEPS) * cost
            counter = nodes.ExprStmt(nodes.Filter(nodes.Const(weight), STEPS, [], [], None, None))
            counter.set_lineno(block.lineno)
            block.body.insert(0, counter)
        return tree

    def check_tree(self, tree: nodes.Template) -> None:
        """Refuse constructs this environment does not offer (and any filter or test named
        like the environment's own counters, which exist only in code the environment adds)."""
        for node in tree.find_all((nodes.Filter, nodes.Test)):
            if node.name[:1] == "_":
                raise TemplateSecurityError(f"no filter or test named {node.name!r}")
        for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            raise TemplateSyntaxError(
                "templates cannot include, import or extend other templates", node.lineno
            )
        for node in tree.find_all((nodes.EvalContextModifier, nodes.ScopedEvalContextModifier)):
            for keyword in node.options:
                if not isinstance(keyword.value, nodes.Const):
                    raise TemplateSyntaxError(
                        "{% autoescape %} takes a literal true or false", node.lineno
                    )

    # -- run time: every access through the gate ---------------------------------------------
    def getattr(self, obj: Any, attribute: str) -> Any:
        value = gate.attribute(obj, attribute, self.allow_specials)
        if value is gate.MISSING:
            # as Jinja: an attribute the value does not have is looked up as an item
            if isinstance(obj, (dict, list, tuple, str)):
                try:
                    return obj[attribute]
                except (TypeError, LookupError):
                    pass
            return self.undefined(obj=obj, name=attribute)
        if not self.is_safe_attribute(obj, attribute, value):
            return self.unsafe_undefined(obj, attribute)
        return value

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Undefined):
            obj._fail_with_undefined_error()
        if isinstance(obj, (dict, list, tuple, str, bytes, range)):
            try:
                return gate.item(obj, argument)
            except (TypeError, LookupError):
                if isinstance(argument, str):
                    return self.getattr(obj, argument)
                return self.undefined(obj=obj, name=argument)
        if isinstance(argument, str):
            return self.getattr(obj, argument)
        raise TemplateSecurityError(f"indexing a {type(obj).__name__!r} object is not allowed")

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise TemplateSecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is not allowed"
        )

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if not gate.is_allowed_callable(__obj, __self.allow_specials):
            if not callable(__obj):
                raise TypeError(f"'{type(__obj).__name__}' object is not callable")
            raise TemplateSecurityError(f"calling a {type(__obj).__name__!r} object is not allowed")
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{__obj!r} is not safely callable")
        if isinstance(getattr(__obj, "__self__", None), str) and getattr(__obj, "__name__", "") in (
            "format",
            "format_map",
        ):
            charge_steps(__self.step_cost)
            return __self.format_string(__obj.__self__, args, kwargs, __obj)
        if type(__obj) is Macro:
            # its body charges its own weight (see _parse)
            return __context.call(__obj, *args, **kwargs)
        if __obj is NAMESPACE or __obj is DICT:
            # (an iterable argument is taken item by item: counted, and bounded, first)
            args = tuple(
                a if isinstance(a, (dict, Namespace)) else gate._bounded_items(a) for a in args
            )
            size = len(kwargs) + sum(len(a) if hasattr(a, "__len__") else 1 for a in args)
            charge_steps(__self.step_cost * (1 + size))
            for arg in args:
                if isinstance(arg, list):
                    gate.charge_pair_keys(arg)
            reserve(size)
            return __context.call(__obj, *args, **kwargs)
        # (loop and block variables are for context functions: none of these takes a context)
        kwargs.pop("_loop_vars", None)
        kwargs.pop("_block_vars", None)
        return gate.call(__obj, args, kwargs, __self.allow_specials)

    def format_string(
        self, s: str, args: tuple, kwargs: dict, format_func: Callable[..., Any] | None = None
    ) -> str:
        formatter = gate.BoundedFormatter(
            self.getattr, self.getitem, escape_fields=isinstance(s, Markup)
        )
        if format_func is not None and format_func.__name__ == "format_map":
            if len(args) != 1 or kwargs:
                raise TypeError(
                    "format_map() takes exactly one argument"
                    f" {len(args) + (kwargs is not None)} given"
                )
            kwargs = args[0]
            args = ()
        rv = formatter.vformat(s, args, kwargs)
        return type(s)(rv)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return gate.binop(operator, left, right)

    bounded_loop = staticmethod(bounded_loop)
    charge = staticmethod(charge)
    count_loop_item = staticmethod(count_loop_item)

    @staticmethod
    def compared(value: Any) -> Any:
        """An operand of a comparison or a search, charged the walk Python makes through it
        (nested values however shared, texts by their length)."""
        kind = type(value)
        if kind is str:
            if len(value) > 4096:
                charge_steps(len(value) >> 8)
        elif kind is not int and kind is not float and kind is not bool and value is not None:
            charge_tree(value)
        return value

    @staticmethod
    def hashed(key: Any) -> Any:
        """A key of a dict literal: hashing a tuple walks every value nested in it."""
        if type(key) is tuple:
            charge_tree(key)
        return key

    @staticmethod
    def bounded_concat(values: tuple, autoescape: bool) -> str:
        """`a ~ b ~ c`: each operand's text measured, the total refused before it is built."""
        budget = _budget.get()
        if budget is None:
            _outside()
        texts = [to_text(value) for value in values]
        total = sum(map(len, texts))
        charge_steps(1 + (total >> 10))
        reserve(total)
        if autoescape and any(hasattr(text, "__html__") for text in texts):
            return check_size(Markup("").join(texts))
        return "".join(texts)

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """What macros, `{% set %}` blocks and call blocks return: their output, bounded."""
        budget = _budget.get()
        if budget is None:
            _outside()
        limit = budget.max_output_chars
        collected = []
        total = 0
        for part in parts:
            total += len(part)
            if total > limit:
                raise TemplateLimitError(f"output limit exceeded ({limit} characters)")
            collected.append(part)
        reserve(total)
        return "".join(collected)


# -- the tenant environment's filters: Jinja's own, allowlisted and bounded ------------------


def _limit() -> int:
    budget = _budget.get()
    if budget is None:
        _outside()
    return budget.max_output_chars


def _steps(operations: int, scanned: int = 0) -> None:
    """A filter's cost: its Python-level operations (each an operation of the tenant
    environment) and a share of the characters/items it scans at C speed."""
    charge_steps(TenantEnvironment.step_cost * operations + scanned)


def _each(items: Any) -> Any:
    """The items of a filter's input, each charged one operation as it is consumed (map,
    select, reject... run other filters and tests item by item)."""
    cost = TenantEnvironment.step_cost
    for item in items:
        charge_steps(cost)
        yield item


def _per_item(func: Callable[..., Any]) -> Callable[..., Any]:
    pass_arg = getattr(func, "jinja_pass_arg", None)
    if pass_arg is None:

        def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
            _steps(1)
            return func(_each(value), *args, **kwargs)

    else:

        def bounded(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            _steps(1)
            return func(context, _each(value), *args, **kwargs)

        bounded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    bounded.__name__ = getattr(func, "__name__", "filter")
    return bounded


def _plain(
    func: Callable[..., Any], scan: bool = False, parses: bool = False
) -> Callable[..., Any]:
    """A filter that works on a value of bounded size and builds at most its size. `parses`:
    it reads a number out of text (`int`, `float`), quadratic in the text's digits."""
    pass_arg = getattr(func, "jinja_pass_arg", None)

    def checked(result: Any) -> Any:
        if type(result) is int:
            gate._check_int(result)
        elif type(result) in _SIZED:
            check_size(result)
        return result

    def cost(value: Any) -> None:
        if parses and isinstance(value, str):
            size = len(value)
            _steps(1, size + ((size * size) >> 16))
            return
        _steps(1, (len(value) >> 4) if scan and hasattr(value, "__len__") else 0)

    if pass_arg is None:

        def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
            cost(value)
            return checked(func(value, *args, **kwargs))

    else:

        def bounded(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            cost(value)
            return checked(func(context, value, *args, **kwargs))

        bounded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    bounded.__name__ = getattr(func, "__name__", "filter")
    return bounded


def _textual(
    func: Callable[..., Any], grows: int = 1, steps_per_char: int = 0
) -> Callable[..., Any]:
    """A filter of text: its input measured as text first (a list that prints as 900 MB is
    refused before it is printed), its result up to `grows` times as long. It costs a step per
    64 characters (a pass at C speed: `lower`, `trim`, `e`...), or `steps_per_char` steps per
    character for the filters that run regular expressions over all of it (`urlize`,
    `striptags`, `title`, `wordcount`)."""
    pass_arg = getattr(func, "jinja_pass_arg", None)

    def prepare(value: Any) -> Any:
        text = to_text(value) if not isinstance(value, str) else value
        _steps(1, len(text) * steps_per_char if steps_per_char else len(text) >> 6)
        reserve(len(text) * grows)
        return text

    if pass_arg is None:

        def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
            return check_size(func(prepare(value), *args, **kwargs))

    else:

        def bounded(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            return check_size(func(context, prepare(value), *args, **kwargs))

        bounded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    bounded.__name__ = getattr(func, "__name__", "filter")
    return bounded


def _sorting(func: Callable[..., Any]) -> Callable[..., Any]:
    pass_arg = getattr(func, "jinja_pass_arg", None)

    def cost(value: Any) -> list:
        items = gate._bounded_items(value)
        # a Python-level key function per item, then the comparisons
        _steps(1 + len(items))
        charge_sort(items)
        return items

    if pass_arg is None:

        def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
            return func(cost(value), *args, **kwargs)

    else:

        def bounded(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            return func(context, cost(value), *args, **kwargs)

        bounded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    bounded.__name__ = getattr(func, "__name__", "filter")
    return bounded


_SIZED = frozenset({str, list, dict, tuple, Markup, bytes})


@pass_environment
def _attr(environment: Any, obj: Any, name: Any) -> Any:
    """`|attr(name)`: an attribute only (never an item), through the gate."""
    _steps(1)
    name = str(name)
    value = gate.attribute(obj, name, environment.allow_specials)
    if value is gate.MISSING:
        return environment.undefined(obj=obj, name=name)
    if not environment.is_safe_attribute(obj, name, value):
        return environment.unsafe_undefined(obj, name)
    return value


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    # a step per item it regroups (and a slot per filler)
    _steps(1, len(value) if hasattr(value, "__len__") else 0)
    if fill_with is not None and isinstance(linecount, int):
        reserve(linecount, linecount * ITEM_BYTES)
    return JINJA_FILTERS["batch"](value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    _steps(1, len(value) if hasattr(value, "__len__") else 0)
    if isinstance(slices, int):
        reserve(slices, slices * ITEM_BYTES)
    return sync_do_slice(value, slices, fill_with)


def _center(value: Any, width: int = 80) -> str:
    text = to_text(value) if not isinstance(value, str) else value
    _steps(1, len(text) >> 6)
    if isinstance(width, int):
        reserve(max(width, len(text)))
    return JINJA_FILTERS["center"](text, width)


def _indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> str:
    text = to_text(s) if not isinstance(s, str) else s
    size = len(width) if isinstance(width, str) else (width if isinstance(width, int) else 0)
    lines = text.count("\n") + text.count("\r") + 2
    _steps(1 + lines, len(text) >> 6)
    reserve(len(text) + lines * max(size, 0))
    return JINJA_FILTERS["indent"](text, width, first, blank)


@pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    text = to_text(s) if not isinstance(s, str) else s
    old_text = to_text(old) if not isinstance(old, str) else old
    new_text = to_text(new) if not isinstance(new, str) else new
    _steps(1, len(text) >> 6)
    found = text.count(old_text) if old_text else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    # escaping (autoescape) may lengthen the parts up to 6 times
    grow = 6 if eval_ctx.autoescape else 1
    reserve(len(text) * grow + found * max(len(new_text) * grow - len(old_text), 0))
    return check_size(JINJA_FILTERS["replace"](eval_ctx, text, old_text, new_text, count))


@pass_eval_context
def _join(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> str:
    items = gate._bounded_items(value)
    _steps(1 + len(items))
    if attribute is not None:
        get = make_attrgetter(eval_ctx.environment, attribute)
        items = [get(item) for item in items]
    separator = to_text(d) if not isinstance(d, str) else d
    limit = _limit()
    texts = []
    total = len(separator) * max(len(items) - 1, 0)
    for item in items:
        text = to_text(item) if not isinstance(item, str) else item
        total += len(text)
        if total > limit:
            raise TemplateLimitError(f"value larger than the output limit ({limit})")
        texts.append(text)
    reserve(total * (6 if eval_ctx.autoescape else 1))
    return check_size(JINJA_FILTERS["join"](eval_ctx, texts, separator))


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise TypeError("can't handle positional and keyword arguments at the same time")
    text = to_text(value) if not isinstance(value, str) else value
    _steps(1)
    return gate.percent_format(text, kwargs or args)


@pass_environment
def _sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    items = gate._bounded_items(iterable)
    _steps(1 + len(items))
    if attribute is not None:
        get = make_attrgetter(environment, attribute)
        items = [get(item) for item in items]
    # adding lists or strings one by one is quadratic: each sum is bounded and counted
    total = start
    for item in items:
        total = gate.binop("+", total, item)
    return total


_MAX_JSON_INDENT = 64


@pass_eval_context
def _tojson(eval_ctx: Any, value: Any, indent: Any = None) -> Markup:
    """`|tojson`: JSON built chunk by chunk, refused as soon as it passes the limit."""
    _steps(1)
    options = dict(eval_ctx.environment.policies["json.dumps_kwargs"])
    if indent is not None:
        if (isinstance(indent, int) and indent > _MAX_JSON_INDENT) or (
            isinstance(indent, str) and len(indent) > _MAX_JSON_INDENT
        ):
            raise TemplateLimitError(f"tojson indent larger than {_MAX_JSON_INDENT}")
        options["indent"] = indent
    limit = _limit()
    parts = []
    total = 0
    for chunk in json.JSONEncoder(**options).iterencode(value):
        total += len(chunk)
        if total > limit:
            raise TemplateLimitError(f"value larger than the output limit ({limit})")
        parts.append(chunk)
    _steps(len(parts), total >> 6)
    reserve(total)
    text = (
        "".join(parts)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("'", "\\u0027")
    )
    return Markup(text)


def _urlencode(value: Any) -> str:
    measure = measure_text(value, _limit())
    _steps(1 + (measure.total >> 4))
    reserve(measure.total * 3)
    # (Jinja's filter prints each value with str(): no address either)
    return check_size(JINJA_FILTERS["urlencode"](without_addresses(value, measure)))


@pass_eval_context
def _xmlattr(eval_ctx: Any, d: Any, autospace: bool = True) -> str:
    measure = measure_text(d, _limit())
    _steps(1 + (measure.total >> 4))
    reserve(measure.total * 6)
    return check_size(JINJA_FILTERS["xmlattr"](eval_ctx, without_addresses(d, measure), autospace))


@pass_environment
def _wordwrap(
    environment: Any,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = to_text(s) if not isinstance(s, str) else s
    if not isinstance(width, int) or width < 1:
        raise TemplateLimitError("wordwrap width must be a positive integer")
    words = text.split()
    # textwrap's cost: a few microseconds per chunk, and quadratic in a word longer than the
    # width (it slices the rest of the word once per line)
    chunks = 2 * len(words)
    quadratic = 0
    for word in words:
        if len(word) > width:
            chunks += len(word) // width
            quadratic += len(word) * len(word) // width
    _steps(1 + chunks * 2 + (quadratic >> 10))
    newline = wrapstring if wrapstring is not None else environment.newline_sequence
    reserve(len(text) + (chunks + text.count("\n") + 1) * len(to_text(newline)))
    return check_size(
        JINJA_FILTERS["wordwrap"](
            environment, text, width, break_long_words, wrapstring, break_on_hyphens
        )
    )


def _list(value: Any) -> list:
    items = gate._bounded_items(value)
    _steps(1, len(items))
    reserve(len(items), len(items) * ITEM_BYTES)
    return items


def _mark_safe(value: Any) -> Markup:
    text = to_text(value) if not isinstance(value, str) else value
    _steps(1)
    return Markup(text)


TENANT_FILTERS: dict[str, Callable[..., Any]] = {
    "abs": _plain(JINJA_FILTERS["abs"]),
    "attr": _attr,
    "batch": _batch,
    "capitalize": _textual(JINJA_FILTERS["capitalize"]),
    "center": _center,
    "count": _plain(JINJA_FILTERS["count"]),
    "d": JINJA_FILTERS["d"],
    "default": JINJA_FILTERS["default"],
    "dictsort": _sorting(JINJA_FILTERS["dictsort"]),
    "e": _textual(JINJA_FILTERS["e"], grows=6),
    "escape": _textual(JINJA_FILTERS["escape"], grows=6),
    "filesizeformat": _plain(JINJA_FILTERS["filesizeformat"]),
    "first": _plain(JINJA_FILTERS["first"]),
    "float": _plain(JINJA_FILTERS["float"], parses=True),
    "forceescape": _textual(JINJA_FILTERS["forceescape"], grows=6),
    "format": _format,
    "groupby": _sorting(JINJA_FILTERS["groupby"]),
    "indent": _indent,
    "int": _plain(JINJA_FILTERS["int"], parses=True),
    "join": _join,
    "last": _plain(JINJA_FILTERS["last"]),
    "length": _plain(JINJA_FILTERS["length"]),
    "list": _list,
    "lower": _textual(JINJA_FILTERS["lower"]),
    "items": _plain(JINJA_FILTERS["items"]),
    # map/select/reject run other filters and tests item by item: each item is charged
    "map": _per_item(JINJA_FILTERS["map"]),
    "min": _sorting(JINJA_FILTERS["min"]),
    "max": _sorting(JINJA_FILTERS["max"]),
    "random": _plain(JINJA_FILTERS["random"]),
    "reject": _per_item(JINJA_FILTERS["reject"]),
    "rejectattr": _per_item(JINJA_FILTERS["rejectattr"]),
    "replace": _replace,
    "reverse": _plain(JINJA_FILTERS["reverse"], scan=True),
    "round": _plain(JINJA_FILTERS["round"]),
    "safe": _mark_safe,
    "select": _per_item(JINJA_FILTERS["select"]),
    "selectattr": _per_item(JINJA_FILTERS["selectattr"]),
    "slice": _slice,
    "sort": _sorting(JINJA_FILTERS["sort"]),
    "string": _textual(JINJA_FILTERS["string"]),
    "striptags": _textual(JINJA_FILTERS["striptags"], steps_per_char=1),
    "sum": _sum,
    "title": _textual(JINJA_FILTERS["title"], steps_per_char=1),
    "trim": _textual(JINJA_FILTERS["trim"]),
    "truncate": _textual(JINJA_FILTERS["truncate"]),
    "unique": _sorting(JINJA_FILTERS["unique"]),
    "upper": _textual(JINJA_FILTERS["upper"], grows=3),
    "urlencode": _urlencode,
    # (a regular expression tried at every word, then one per link)
    "urlize": _textual(JINJA_FILTERS["urlize"], grows=4, steps_per_char=6),
    "wordcount": _textual(JINJA_FILTERS["wordcount"], steps_per_char=1),
    "wordwrap": _wordwrap,
    "xmlattr": _xmlattr,
    "tojson": _tojson,
}


def _test(func: Callable[..., Any]) -> Callable[..., Any]:
    """A test (`is ...`, and through select/reject): one operation, and the walk through its
    operands (`in` searches a text or a list, `eq` compares nested values)."""
    pass_arg = getattr(func, "jinja_pass_arg", None)

    def cost(value: Any, args: tuple) -> None:
        _steps(1)
        for operand in (value, *args):
            if type(operand) not in (int, float, bool) and operand is not None:
                charge_tree(operand)

    if pass_arg is None:

        def bounded(value: Any, *args: Any) -> Any:
            cost(value, args)
            return func(value, *args)

    else:

        def bounded(context: Any, value: Any, *args: Any) -> Any:  # type: ignore[misc]
            cost(value, args)
            return func(context, value, *args)

        bounded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    bounded.__name__ = getattr(func, "__name__", "test")
    return bounded


TENANT_TESTS = {name: _test(func) for name, func in DEFAULT_TESTS.items()}


class TenantEnvironment(BoundedEnvironment):
    """Tenant-authored Jinja: Jinja's filters, tests and globals (allowlisted, bounded), no
    legacy helpers."""

    step_cost = 8
    iteration_cost = 12

    def __init__(self, autoescape: bool, limits: RenderLimits) -> None:
        super().__init__(
            autoescape=autoescape,
            limits=limits,
            filters=TENANT_FILTERS,
            tests=TENANT_TESTS,
            global_values={"range": RANGE, "dict": DICT, "namespace": NAMESPACE},
            extensions=["jinja2.ext.loopcontrols"],
        )


def _register_group_tuple() -> None:
    from jinja2.filters import _GroupTuple

    gate.register_type(
        _GroupTuple,
        {"count": gate._scan_items, "index": gate._scan_items},
        (
            "grouper",
            "list",
        ),
    )


_register_group_tuple()
