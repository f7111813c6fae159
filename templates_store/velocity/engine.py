"""The new template engine: a sandboxed, bounded Jinja2 environment.

Plain Jinja templates (new mail templates) and templates converted from legacy Velocity
(see converter.py) both run here.  Converted templates call the helpers of runtime.py,
registered as filters, to keep airspeed's exact output.
"""

from __future__ import annotations

import copy
import functools
import io
import re
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from . import fastpath, runtime
from .errors import (
    TemplateLimitError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
)

__all__ = [
    "Engine",
    "RenderLimits",
    "CompiledTemplate",
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateLimitError",
    "TemplateSyntaxError",
]

_FORMAT_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d{7,})")
_PERCENT_WIDTH = re.compile(r"%[-#0 +]*(?:\(\w*\))?[-#0 +]*(\d{7,}|\*)|%[-#0 +]*\d*\.(\d{7,})")


@dataclass(frozen=True)
class RenderLimits:
    """Bounds applied to every render.

    max_output_chars: the rendered text (and any single string or collection built while
    rendering) may not exceed this many characters/items.
    max_loop_iterations: total loop checkpoints of one render, nested loops included. A
    converted Velocity `#foreach` item passes two checkpoints (the Jinja loop and the Velocity
    runtime), so the default allows 100,000 `#foreach` items, or 200,000 plain Jinja iterations.
    max_depth: macro / #define / #evaluate nesting.
    """

    max_output_chars: int = 1_000_000
    max_loop_iterations: int = 200_000
    max_depth: int = 64


class _BoundedCodeGenerator(CodeGenerator):
    """Routes every `~` concatenation through a size check."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802
        self.write("environment._bounded_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


def _bounded_loop(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        runtime.count_iteration()
        yield item


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    budget = runtime.current_budget()
    limit = budget.max_loop_iterations if budget else RenderLimits.max_loop_iterations
    if len(rng) > limit:
        raise TemplateLimitError(f"range() larger than the loop limit ({limit})")
    return rng


class VelocityEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed (no `_` attributes, no mutation of builtin containers from Jinja code),
    with the size-producing operators and filters bounded."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

    def __init__(self, engine: Engine, autoescape: bool) -> None:
        super().__init__(
            autoescape=autoescape,
            keep_trailing_newline=True,
            extensions=["jinja2.ext.do"],
            cache_size=0,
            auto_reload=False,
        )
        self.engine = engine
        self.filters.update(runtime.FILTERS)
        self.filters["_bounded_loop"] = _bounded_loop
        for name in ("center", "indent", "format", "replace", "wordwrap", "join", "truncate"):
            self.filters[name] = _size_checked(self.filters[name], name)
        self.globals["range"] = _bounded_range
        # rarely useful in notifications, and each extra global is attack surface
        for name in ("lipsum", "cycler", "joiner"):
            self.globals.pop(name, None)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        # every `for` iterates through the loop budget, whatever the template author wrote
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_bounded_loop", [], [], None, None)
            loop.iter.set_lineno(loop.lineno)
        return tree

    def _bounded_concat(self, value: Any) -> Any:
        return runtime.check_size(value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise TemplateSecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is not allowed"
        )

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple, bytes)) and isinstance(times, int):
                    runtime.check_size(range(len(seq) * max(times, 0)))
        elif operator_name == "**":
            if isinstance(right, int) and right > 1024 and isinstance(left, int) and abs(left) > 1:
                raise TemplateLimitError("exponent too large")
        elif operator_name == "%" and isinstance(left, str) and _PERCENT_WIDTH.search(left):
            raise TemplateLimitError("format width larger than the output limit")
        result = self.binop_table[operator_name](left, right)
        if isinstance(result, (str, list, tuple, bytes)):
            runtime.check_size(result)
        return result

    def wrap_str_format(self, value: Any) -> Any:
        wrapper = super().wrap_str_format(value)
        if wrapper is not None and _FORMAT_WIDTH.search(value.__self__):
            raise TemplateLimitError("format width larger than the output limit")
        return wrapper

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and getattr(__obj, "__name__", "") in (
            "center",
            "ljust",
            "rjust",
            "zfill",
            "expandtabs",
        ):
            for arg in args:
                if isinstance(arg, int):
                    runtime.check_size(range(arg))
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, (str, list, tuple, bytes)):
            runtime.check_size(result)
        return result


def _size_checked(func: Any, name: str) -> Any:
    def checked(*args: Any, **kwargs: Any) -> Any:
        if name in ("center", "indent"):
            for arg in list(args[1:]) + list(kwargs.values()):
                if isinstance(arg, int) and not isinstance(arg, bool):
                    runtime.check_size(range(arg))
        if (
            name == "format"
            and args
            and isinstance(args[0], str)
            and _PERCENT_WIDTH.search(args[0])
        ):
            raise TemplateLimitError("format width larger than the output limit")
        if name == "replace" and len(args) >= 3:
            text = str(args[0])
            new = str(args[2])
            old = str(args[1])
            estimate = (text.count(old) + 1 if old else len(text) + 1) * (len(new) + 1)
            runtime.check_size(range(estimate + len(text)))
        return runtime.check_size(func(*args, **kwargs))

    for attr in ("jinja_pass_arg",):
        if hasattr(func, attr):
            setattr(checked, attr, getattr(func, attr))
    checked.__name__ = getattr(func, "__name__", name)
    return checked


@dataclass
class CompiledTemplate:
    source: str
    template: jinja2.Template
    # the template calls helpers that can write into the data (Velocity #set/macros/methods)
    mutates: bool
    # the template may contain a Velocity #stop marker in its output
    stops: bool
    # converted Velocity: reads only `_vdata`, so the context needs no copy of the data
    converted: bool = False
    # the generated code needs nothing of Jinja's Context but `_vdata` and a few plain
    # attributes: rendered by calling its root function with a `_LeanContext`
    lean: bool = False
    # the template has `for` loops: its output is collected with streaming limit checks
    loops: bool = True
    # the same template compiled by fastpath.py to a plain function (None: Jinja only)
    fast: Any = None
    # the fast function needs no budget set by its caller (never reads one, or sets it)
    bare: bool = False


class _LeanContext:
    """The part of `jinja2.runtime.Context` that lean templates' generated code uses.

    Each Engine subclasses it with its (shared, never modified) `eval_ctx`.
    """

    __slots__ = ("vars", "_data")
    eval_ctx: nodes.EvalContext

    def __init__(self, data: Any) -> None:
        self.vars: dict[str, Any] = {}
        self._data = data

    def resolve_or_missing(self, key: str) -> Any:
        return self._data if key == "_vdata" else missing


_LEAN_ATTRIBUTES = frozenset({"resolve_or_missing", "vars"})


def _lean_code(code: str) -> bool:
    """True when the generated module uses `context` only in ways `_LeanContext` serves
    exactly and resolves no template variable but `_vdata`."""
    try:
        tokens = [
            tok
            for tok in tokenize.generate_tokens(io.StringIO(code).readline)
            if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT)
            and tok.type not in (tokenize.INDENT, tokenize.DEDENT)
        ]
    except (tokenize.TokenError, SyntaxError):
        return False
    words = [tok.string for tok in tokens]
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.NAME:
            continue
        word = tok.string
        if word == "resolve":
            # `resolve = context.resolve_or_missing` or `resolve('_vdata')`
            if words[i + 1 : i + 2] == ["="] and words[i + 2 : i + 5] == [
                "context",
                ".",
                "resolve_or_missing",
            ]:
                continue
            if words[i + 1 : i + 4] != ["(", "'_vdata'", ")"]:
                return False
        elif word == "context":
            before = words[max(i - 2, 0) : i]
            after = words[i + 1 : i + 5]
            if before in (["root", "("], ["call_binop", "("]) and after[:1] == [","]:
                continue  # `def root(context, ...)`; our call_binop ignores the context
            if after[:1] == ["."] and after[1:2] and after[1] in _LEAN_ATTRIBUTES:
                continue
            if after[:3] == [".", "eval_ctx", "."] and after[3:4] == ["autoescape"]:
                following = words[i + 5 : i + 6]
                if following != ["="]:
                    continue
            return False
    return True


class Engine:
    """Compiles and renders templates.

    `autoescape` is the per-template HTML escaping flag: converted legacy templates must be
    rendered with autoescape off (the legacy engine escaped nothing).
    """

    def __init__(
        self,
        autoescape: bool = False,
        limits: RenderLimits | None = None,
        cache_size: int = 512,
    ) -> None:
        self.autoescape = autoescape
        self.limits = limits or RenderLimits()
        self.env = VelocityEnvironment(self, autoescape)
        limits = self.limits
        self._max_chars = limits.max_output_chars
        self._budget_class = runtime.budget_class(
            limits.max_output_chars, limits.max_loop_iterations, limits.max_depth, self.env
        )
        # lean renders share one EvalContext: their code only reads `autoescape` from it
        self._lean_context = type(
            "EngineLeanContext",
            (_LeanContext,),
            {"__slots__": (), "eval_ctx": nodes.EvalContext(self.env)},
        )
        # functools' LRU cache is thread-safe and cheap on hits (C implementation)
        self._compile_cached = functools.lru_cache(maxsize=cache_size)(self._compile)
        # renders look templates up here first (a plain dict: cheaper than the LRU call);
        # bounded like the LRU cache, emptied when full
        self._hot: dict[str, CompiledTemplate] = {}
        self._hot_size = cache_size

    def compile(self, source: str) -> CompiledTemplate:
        """Compile (or fetch from the LRU cache) the Jinja template text `source`."""
        return self._compile_cached(source)

    def _new_budget(self) -> runtime.RenderBudget:
        return self._budget_class()

    def _compile(self, source: str) -> CompiledTemplate:
        env = self.env
        # Jinja's optimizer folds constant filter calls at compile time: bounded like renders
        token = runtime.set_budget(self._new_budget())
        stops = "vstop" in source or "vevaluate" in source
        fast = None
        try:
            tree = env.parse(source)
            code = env.compile(tree, raw=True)
            template = env.template_class.from_code(
                env, env._compile(code, "<template>"), env.make_globals(None), None
            )
            if not stops:
                # after Jinja's compiler: the tree holds the same constant folding
                fast = fastpath.compile_fast(
                    tree,
                    env,
                    self._max_chars,
                    self._budget_class,
                    self.limits.max_loop_iterations,
                )
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateSyntaxError(exc.message or str(exc), exc.lineno) from exc
        except SecurityError as exc:
            raise TemplateSecurityError(str(exc)) from exc
        except TemplateRenderError:
            raise
        except (RecursionError, MemoryError) as exc:
            raise TemplateLimitError("template too complex") from exc
        finally:
            runtime.reset_budget(token)
        lean = _lean_code(code)
        return CompiledTemplate(
            source=source,
            template=template,
            mutates=_may_mutate(tree),
            stops=stops,
            converted=lean or "_vdata|vroot" in source,
            lean=lean,
            loops=tree.find(nodes.For) is not None,
            fast=fast,
            bare=fast is not None and not fast.__needs_budget__,
        )

    def _lookup(self, source: str) -> CompiledTemplate:
        compiled = self._compile_cached(source)
        if self._hot_size > 0:
            hot = self._hot
            if len(hot) >= self._hot_size:
                hot.clear()
            hot[source] = compiled
        return compiled

    def render(self, source: str, data: dict[str, Any] | None = None) -> str:
        """Render `source` with `data`; the caller's data is never modified."""
        compiled = self._hot.get(source)
        if compiled is None:
            compiled = self._lookup(source)
        if data is None:
            data = {}
        fast = compiled.fast
        if compiled.bare:
            # the fast function sets a budget itself if it needs one (see compile_fast)
            try:
                text = fast(copy.deepcopy(data) if compiled.mutates else data)
            except Exception:  # noqa: BLE001 - rendered again by Jinja, whose error it is
                text = None
            if text is not None:
                if len(text) > self._max_chars:
                    raise _limit_error(self._max_chars)
                return text
        elif fast is not None:
            token = _set_budget(self._budget_class())
            try:
                text = fast(copy.deepcopy(data) if compiled.mutates else data)
            except Exception:  # noqa: BLE001 - rendered again by Jinja, whose error it is
                text = None
            finally:
                _reset_budget(token)
            if text is not None:
                if len(text) > self._max_chars:
                    raise _limit_error(self._max_chars)
                return text
        return self._render_jinja(compiled, data)

    def _render_fast(self, source: str, data: dict[str, Any] | None = None) -> str:
        """The fast path alone (tests): its own errors, mapped like Jinja's."""
        compiled = self._compile_cached(source)
        if compiled.fast is None:
            raise ValueError("template has no fast path")
        data = {} if data is None else data
        token = _set_budget(self._budget_class())
        try:
            text = compiled.fast(copy.deepcopy(data) if compiled.mutates else data)
        except Exception as exc:  # noqa: BLE001
            raise _render_error(exc) from exc
        finally:
            _reset_budget(token)
        if len(text) > self._max_chars:
            raise _limit_error(self._max_chars)
        return text

    def _render_jinja(self, compiled: CompiledTemplate, data: dict[str, Any]) -> str:
        if compiled.mutates:
            data = copy.deepcopy(data)
        template = compiled.template
        if compiled.lean:
            ctx: Any = self._lean_context(data)
        else:
            if compiled.converted:
                context = {"_vdata": data}
            else:
                context = dict(template.globals)
                context.update(data)
                context["_vdata"] = data
            # a shared Context skips Jinja's per-render copy of globals (context holds them)
            ctx = Context(self.env, context, None, template.blocks)
        token = _set_budget(self._budget_class())
        try:
            chunks = template.root_render_func(ctx)
            if compiled.stops:
                return _collect_stopping(chunks, self._max_chars)
            if compiled.loops:
                return _collect(chunks, self._max_chars)
            # no loop: a fixed number of chunks, each an input value or a bounded result
            text = "".join(chunks)
            if len(text) > self._max_chars:
                raise _limit_error(self._max_chars)
            return text
        except TemplateRenderError:
            raise
        except Exception as exc:
            raise _render_error(exc) from exc
        finally:
            _reset_budget(token)


def _render_error(exc: Exception) -> TemplateRenderError:
    """The engine's error for an exception raised while rendering."""
    if isinstance(exc, TemplateRenderError):
        return exc
    if isinstance(exc, SecurityError):
        return TemplateSecurityError(str(exc))
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateRenderError(str(exc))
    if isinstance(exc, RecursionError):
        return TemplateLimitError("recursion too deep")
    if isinstance(exc, MemoryError):
        return TemplateLimitError("out of memory")
    return TemplateRenderError(f"{type(exc).__name__}: {exc}")


_set_budget = runtime._budget.set
_reset_budget = runtime._budget.reset


def _may_mutate(tree: nodes.Template) -> bool:
    """The template calls a helper that can change the data: renders work on a copy.

    Method calls (`vc`) only count when the method name is not a constant known to leave
    its object unchanged.
    """
    for node in tree.find_all(nodes.Filter):
        if node.name in runtime.MUTATING_FILTERS:
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


# Output is collected in batches: C-speed joins, and the limit is checked every batch, so
# at most `_BATCH` chunks past the limit are ever produced.
_BATCH = 32


def _limit_error(max_chars: int) -> TemplateLimitError:
    return TemplateLimitError(f"output limit exceeded ({max_chars} characters)")


def _collect(chunks: Iterator[str], max_chars: int) -> str:
    parts = list(islice(chunks, _BATCH))
    total = sum(map(len, parts))
    if total > max_chars:
        raise _limit_error(max_chars)
    if len(parts) < _BATCH:
        return "".join(parts)
    while batch := list(islice(chunks, _BATCH)):
        total += sum(map(len, batch))
        if total > max_chars:
            raise _limit_error(max_chars)
        parts += batch
    return "".join(parts)


def _collect_stopping(chunks: Iterable[str], max_chars: int) -> str:
    parts: list[str] = []
    total = 0
    marker = runtime.STOP_MARKER
    stopped = False
    for chunk in chunks:
        if stopped:
            # airspeed keeps evaluating after #stop (errors still fail the render)
            continue
        cut = chunk.find(marker)
        if cut >= 0:
            chunk = chunk[:cut]
            stopped = True
        total += len(chunk)
        if total > max_chars:
            raise _limit_error(max_chars)
        parts.append(chunk)
    return "".join(parts)
