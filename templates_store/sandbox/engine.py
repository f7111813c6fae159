"""Compiling and rendering templates in a bounded environment.

`TenantEngine` renders tenant-authored Jinja in `TenantEnvironment`. The converted-template
engine (templates_store.velocity.engine.Engine) shares the compile cache, the error mapping
and the output collection defined here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

from .budget import RenderBudget, RenderLimits, budget_class, reset_budget, set_budget
from .environment import BoundedEnvironment, TenantEnvironment
from .errors import (
    TemplateLimitError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
)

__all__ = ["BaseEngine", "TenantEngine", "RenderLimits", "render_error", "limit_error"]

# compiled templates kept per engine, bounded by the total size of their sources (a compiled
# template takes several times its source in memory)
CACHE_SOURCE_CHARS = 4_000_000


class SourceCache:
    """An LRU cache of compiled templates bounded by the total length of their sources."""

    def __init__(self, max_chars: int = CACHE_SOURCE_CHARS) -> None:
        self.max_chars = max_chars
        self.entries: OrderedDict[str, Any] = OrderedDict()
        self.chars = 0
        self.lock = threading.Lock()

    def get(self, source: str) -> Any:
        entry = self.entries.get(source)
        if entry is not None:
            with self.lock:
                if source in self.entries:
                    self.entries.move_to_end(source)
        return entry

    def put(self, source: str, compiled: Any) -> None:
        if len(source) > self.max_chars:
            return
        with self.lock:
            if source in self.entries:
                return
            self.entries[source] = compiled
            self.chars += len(source)
            while self.chars > self.max_chars:
                old, _ = self.entries.popitem(last=False)
                self.chars -= len(old)


class BaseEngine:
    """Compiles (with a bounded cache) and renders (with a fresh budget) in one environment."""

    environment: BoundedEnvironment

    def __init__(self, limits: RenderLimits | None = None) -> None:
        self.limits = limits or RenderLimits()
        self._cache = SourceCache()

    def new_budget(self) -> RenderBudget:
        return self._budget_class()

    def _setup(self, environment: BoundedEnvironment) -> None:
        self.environment = self.env = environment
        environment.engine = self  # type: ignore[attr-defined]
        self._budget_class = budget_class(self.limits, environment)

    def compile(self, source: str) -> Any:
        """The compiled template for `source` (cached); TemplateSyntaxError or
        TemplateSecurityError when it cannot be compiled."""
        compiled = self._cache.get(source)
        if compiled is None:
            compiled = self._compile(source)
            self._cache.put(source, compiled)
        return compiled

    def _compile(self, source: str) -> Any:
        return compile_source(self.environment, source)

    def render(self, source: str, data: dict[str, Any] | None = None) -> str:
        template = self.compile(source)
        context = template.new_context(dict(data or {}), shared=False)
        token = set_budget(self.new_budget())
        try:
            return collect(template.root_render_func(context), self.limits.max_output_chars)
        except TemplateRenderError:
            raise
        except Exception as exc:
            raise render_error(exc) from exc
        finally:
            reset_budget(token)


def compile_source(environment: BoundedEnvironment, source: str) -> jinja2.Template:
    try:
        return environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxError(exc.message or str(exc), exc.lineno) from exc
    except SecurityError as exc:
        raise TemplateSecurityError(str(exc)) from exc
    except TemplateRenderError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise TemplateLimitError("template too complex to compile") from exc
    except (SyntaxError, ValueError, OverflowError) as exc:
        # Python's own compiler limits (nesting, literal sizes) on the generated code
        raise TemplateLimitError(f"template too complex to compile: {exc}") from exc


class TenantEngine(BaseEngine):
    """Tenant-authored Jinja (`engine: jinja2`)."""

    def __init__(self, autoescape: bool = False, limits: RenderLimits | None = None) -> None:
        super().__init__(limits)
        self.autoescape = autoescape
        self._setup(TenantEnvironment(autoescape, self.limits))


def render_error(exc: BaseException) -> TemplateRenderError:
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
    return TemplateRenderError(f"{type(exc).__name__}: {_message(exc)}")


MAX_ERROR_MESSAGE = 300


def _message(exc: BaseException) -> str:
    """An exception's text, bounded: Python puts values into some messages (`[...] is not in
    list`), and a KeyError prints its key only when asked (a template-built key may be huge)."""
    if isinstance(exc, KeyError):
        return "key not found"
    args = exc.args
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else ""
    if not text and args:
        text = "; ".join(arg for arg in args if isinstance(arg, str))
    if len(text) > MAX_ERROR_MESSAGE:
        text = text[:MAX_ERROR_MESSAGE] + "…"
    return text


def limit_error(max_chars: int) -> TemplateLimitError:
    return TemplateLimitError(f"output limit exceeded ({max_chars} characters)")


def collect(chunks: Iterator[str], max_chars: int) -> str:
    """The output, its size checked at every chunk (a chunk can be a million characters)."""
    parts: list[str] = []
    append = parts.append
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_chars:
            raise limit_error(max_chars)
        append(chunk)
    return "".join(parts)


def collect_stopping(chunks: Iterable[str], max_chars: int, marker: str) -> str:
    """`collect` for converted templates that may `#stop`: output ends at the marker."""
    parts: list[str] = []
    total = 0
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
            raise limit_error(max_chars)
        parts.append(chunk)
    return "".join(parts)
