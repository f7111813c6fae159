"""The converted-template engine: templates converted from legacy Velocity (converter.py)
render here, in their own bounded environment whose only filters are the helpers of
runtime.py (they keep airspeed's exact output; every access they make goes through
templates_store.sandbox.gate). Tenant-authored Jinja renders elsewhere
(templates_store.sandbox.engine.TenantEngine) and cannot name these helpers.
"""

from __future__ import annotations

import copy
import io
import os
import tokenize
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.tests import test_none
from jinja2.utils import missing

from templates_store.sandbox.budget import NoBudget, RenderLimits, reset_budget, set_budget
from templates_store.sandbox.engine import (
    CACHE_SOURCE_CHARS,
    BaseEngine,
    SourceCache,
    collect,
    collect_stopping,
    compile_source,
    limit_error,
    render_error,
)
from templates_store.sandbox.environment import BoundedEnvironment

from . import fastpath, runtime
from .errors import (
    TemplateLimitError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
)

__all__ = [
    "Engine",
    "ConvertedEnvironment",
    "RenderLimits",
    "CompiledTemplate",
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateLimitError",
    "TemplateSyntaxError",
]

# Nodes the converter never produces: a converted template reaches values only through the
# helpers (and so through the gate), never through Jinja's own attribute, item or call syntax.
_FOREIGN_NODES = (nodes.Getattr, nodes.Getitem, nodes.Call, nodes.Slice, nodes.NSRef)


class ConvertedEnvironment(BoundedEnvironment):
    """Converted legacy templates: the runtime helpers and nothing else of Jinja's (no
    builtin filters, tests but `none`, or globals). Its text is produced by the converter,
    never written by a tenant."""

    allow_specials = True
    # airspeed printed a bound method with its address (docs/templates.md, known limits)
    python_reprs = True

    def __init__(self, engine: Engine, autoescape: bool, limits: RenderLimits) -> None:
        super().__init__(
            autoescape=autoescape,
            limits=limits,
            filters=runtime.FILTERS,
            tests={"none": test_none},
            global_values={},
            extensions=["jinja2.ext.do"],
        )
        self.engine = engine

    def check_tree(self, tree: nodes.Template) -> None:
        super().check_tree(tree)
        for node in tree.find_all(_FOREIGN_NODES):
            raise TemplateSecurityError(
                f"{type(node).__name__.lower()} expressions are not allowed in converted templates"
            )


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


def fast_path_default() -> bool:
    """The fast path is on unless NOTIFY_TEMPLATE_FAST_PATH is 0/false/off (the Django setting
    TEMPLATE_FAST_PATH passes its value to every engine it creates)."""
    return os.environ.get("NOTIFY_TEMPLATE_FAST_PATH", "1").strip().lower() not in (
        "0",
        "false",
        "off",
        "no",
    )


class Engine(BaseEngine):
    """Compiles and renders converted legacy templates (`engine: velocity`).

    `autoescape` must stay off for converted legacy templates (the legacy engine escaped
    nothing); `fast_path` chooses whether templates the fast path can compile run as plain
    Python functions (the same helpers, checks and limits) or always through Jinja.
    """

    def __init__(
        self,
        autoescape: bool = False,
        limits: RenderLimits | None = None,
        cache_size: int = 512,
        fast_path: bool | None = None,
    ) -> None:
        super().__init__(limits)
        self.autoescape = autoescape
        self.fast_path = fast_path_default() if fast_path is None else fast_path
        self._setup(ConvertedEnvironment(self, autoescape, self.limits))
        self._max_chars = self.limits.max_output_chars
        # lean renders share one EvalContext: their code only reads `autoescape` from it
        self._lean_context = type(
            "EngineLeanContext",
            (_LeanContext,),
            {"__slots__": (), "eval_ctx": nodes.EvalContext(self.env)},
        )
        # renders look templates up here first (a plain dict: cheaper than the LRU cache);
        # bounded like it, emptied when full
        self._hot: dict[str, CompiledTemplate] = {}
        self._hot_size = cache_size
        # the fast functions of hot templates that never write into their data, by whether
        # they need a budget set by their caller: render calls them with no further lookup
        # (a template of text alone: its text, what its function gives any plain dict)
        self._hot_bare: dict[str, Any] = {}
        self._hot_budgeted: dict[str, Any] = {}
        self._evaluated = SourceCache(CACHE_SOURCE_CHARS // 4)

    def _compile(self, source: str) -> CompiledTemplate:
        env = self.env
        stops = "vstop" in source or "vevaluate" in source
        fast = None
        try:
            tree = env.parse(source)
            code = env.compile(tree, raw=True)
            template = env.template_class.from_code(
                env, env._compile(code, "<template>"), env.make_globals(None), None
            )
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateSyntaxError(exc.message or str(exc), exc.lineno) from exc
        except TemplateRenderError:
            raise
        except Exception as exc:  # noqa: BLE001 - the shared mapping (compiler limits...)
            try:
                compile_source(env, source)
            except TemplateRenderError as mapped:
                raise mapped from exc
            raise TemplateLimitError(f"template too complex to compile: {exc}") from exc
        if self.fast_path and not stops:
            fast = fastpath.compile_fast(tree, env, self.limits, self._budget_class)
        lean = _lean_code(code)
        return CompiledTemplate(
            source=source,
            template=template,
            mutates=fastpath.may_mutate(tree),
            stops=stops,
            converted=lean or "_vdata|vroot" in source,
            lean=lean,
            loops=tree.find(nodes.For) is not None,
            fast=fast,
            bare=fast is not None and not fast.__needs_budget__,
        )

    def compile_evaluated(self, source: str) -> jinja2.Template:
        """An #evaluate text converted at render time: compiled for Jinja only (it renders
        once per evaluation), in a cache of its own."""
        template = self._evaluated.get(source)
        if template is None:
            template = compile_source(self.env, source)
            self._evaluated.put(source, template)
        return template

    def _lookup(self, source: str) -> CompiledTemplate:
        compiled = self.compile(source)
        if self._hot_size > 0:
            hot = self._hot
            if len(hot) >= self._hot_size:
                hot.clear()
                self._hot_bare.clear()
                self._hot_budgeted.clear()
            hot[source] = compiled
            if compiled.fast is not None and not compiled.mutates:
                if compiled.bare:
                    constant = compiled.fast.__constant__
                    self._hot_bare[source] = (
                        constant
                        if constant is not None and len(constant) <= self._max_chars
                        else compiled.fast
                    )
                else:
                    self._hot_budgeted[source] = compiled.fast
        return compiled

    def render(self, source: str, data: dict[str, Any] | None = None) -> str:
        """Render `source` with `data`; the caller's data is never modified."""
        if data is not None:
            # the common cases first, as `_render` handles them (this is the hottest path)
            fast = self._hot_bare.get(source)
            if fast is not None:
                if type(fast) is str:
                    return fast if type(data) is dict else self._render(source, data)
                # (`_run_fast` inlined for the most common case: one call less per render is
                # a tenth of a short template's time)
                try:
                    text = fast(data)
                except (fastpath.Bail, NoBudget):
                    text = None
                except Exception as exc:  # noqa: BLE001 - the helpers' own error, as Jinja maps it
                    raise render_error(exc) from exc
                if text is not None and len(text) > self._max_chars:
                    raise limit_error(self._max_chars)
            else:
                fast = self._hot_budgeted.get(source)
                if fast is None:
                    return self._render(source, data)
                text = self._run_fast(fast, data, budgeted=True)
            if text is not None:
                return text
            return self._render_jinja(self._hot.get(source) or self._lookup(source), data)
        return self._render(source, data)

    def _render(self, source: str, data: dict[str, Any] | None) -> str:
        compiled = self._hot.get(source)
        if compiled is None:
            compiled = self._lookup(source)
        if data is None:
            data = {}
        if compiled.fast is not None:
            text = self._run_fast(
                compiled.fast,
                _copied(data) if compiled.mutates else data,
                budgeted=not compiled.bare,
            )
            if text is not None:
                return text
        return self._render_jinja(compiled, data)

    def _run_fast(self, fast: Any, data: dict[str, Any], *, budgeted: bool) -> str | None:
        """A fast function's text, or None for a case it leaves to Jinja (which renders with a
        budget of its own). `budgeted`: the function needs a budget set by its caller (a bare
        one sets none: a helper that needs one raises NoBudget, and Jinja renders it)."""
        token = set_budget(self._budget_class()) if budgeted else None
        try:
            text = fast(data)
        except (fastpath.Bail, NoBudget):
            return None
        except Exception as exc:  # noqa: BLE001 - the helpers' own error, as Jinja maps it
            # (never a second render: the budget was spent once)
            raise render_error(exc) from exc
        finally:
            if token is not None:
                reset_budget(token)
        if text is not None and len(text) > self._max_chars:
            raise limit_error(self._max_chars)
        return text

    def _render_fast(self, source: str, data: dict[str, Any] | None = None) -> str:
        """The fast path alone (tests): its own errors, mapped like Jinja's."""
        compiled = self.compile(source)
        if compiled.fast is None:
            raise ValueError("template has no fast path")
        data = {} if data is None else data
        token = set_budget(self._budget_class())
        try:
            text = compiled.fast(_copied(data) if compiled.mutates else data)
        except Exception as exc:  # noqa: BLE001
            raise render_error(exc) from exc
        finally:
            reset_budget(token)
        if text is None:
            raise ValueError("the fast path declined this data")
        if len(text) > self._max_chars:
            raise limit_error(self._max_chars)
        return text

    def _render_jinja(self, compiled: CompiledTemplate, data: dict[str, Any]) -> str:
        if compiled.mutates:
            data = _copied(data)
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
        token = set_budget(self._budget_class())
        try:
            chunks = template.root_render_func(ctx)
            if compiled.stops:
                return collect_stopping(chunks, self._max_chars, runtime.STOP_MARKER)
            if compiled.loops:
                return collect(chunks, self._max_chars)
            # no loop: a fixed number of chunks, each an input value or a bounded result
            text = "".join(chunks)
            if len(text) > self._max_chars:
                raise limit_error(self._max_chars)
            return text
        except TemplateRenderError:
            raise
        except Exception as exc:
            raise render_error(exc) from exc
        finally:
            reset_budget(token)


def _copied(data: Any) -> Any:
    """The data a render that may write into it works on (the caller's stays untouched)."""
    try:
        return copy.deepcopy(data)
    except RecursionError:
        raise TemplateLimitError("data nested too deeply") from None
