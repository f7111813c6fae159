"""Per-render budgets: counted steps, loop iterations, nesting depth, and sizes checked before
anything is allocated.

One `RenderBudget` exists per render (held in a ContextVar while the render runs). Every
check fails closed: without a budget (outside a render, e.g. while a template compiles)
nothing that counts or allocates may run at all, so no tenant-controlled code can run at
compile time.

Units: sizes are characters for text and items for collections. "Work" is the total of every
value built while rendering (text built by helpers, results of size-producing operations):
it bounds both the CPU time spent building values and what a render can keep alive.
"Steps" are counted units of CPU: each loop iteration costs the static weight of its body
(the number of expressions in it), each macro call its body's weight plus a fixed overhead,
each method/filter call one step plus a share proportional to the size it scans, and big
integer arithmetic a share proportional to the integers' size.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import TemplateLimitError, TemplateSecurityError

__all__ = [
    "RenderLimits",
    "RenderBudget",
    "budget_class",
    "current_budget",
    "active_budget",
    "set_budget",
    "reset_budget",
    "render_budget",
    "count_iteration",
    "charge_steps",
    "check_size",
    "reserve",
    "TEXT_OBJECT_BYTES",
]


@dataclass(frozen=True)
class RenderLimits:
    """Bounds applied to every render (preview, send, verification, admin).

    max_output_chars: the rendered text, and any single string or collection built while
      rendering, may not exceed this many characters/items.
    max_loop_iterations: total loop checkpoints of one render, nested loops included. A
      converted Velocity `#foreach` item passes two checkpoints (the Jinja loop and the Velocity
      runtime), so the default allows 100,000 `#foreach` items, or 200,000 plain Jinja
      iterations.
    max_depth: macro / #define / #evaluate nesting.
    max_steps: counted CPU steps (see the module docstring).
    max_work: total size of every value built by the render: characters (long non-ASCII
      text counted by its storage width, 2 or 4 bytes a character) and items. It bounds
      both the CPU time of building values and the memory a render can keep (legacy
      templates that build a text by re-reading it, `#set($s = "$s$i,")`, do quadratic work
      with linear memory: 64 million units leave room for a 20,000-character text built
      that way).
    max_int_bits: the largest integer arithmetic may produce (16,384 bits: about 4,900 digits,
      more than Python prints).
    regex_timeout: wall-clock seconds one regular expression operation may take;
      regex_total: all of them together in one render.
    """

    max_output_chars: int = 1_000_000
    max_loop_iterations: int = 200_000
    max_depth: int = 64
    max_steps: int = 2_000_000
    max_work: int = 64_000_000
    max_int_bits: int = 16_384
    regex_timeout: float = 0.1
    regex_total: float = 0.3


class RenderBudget:
    """Per-render counters. The counters start as class attributes (an instance only gets its
    own once it counts); `budget_class` makes a subclass with the limits fixed, instantiated
    without arguments (cheap: one per render)."""

    iterations = 0
    produced = 0
    depth = 0
    steps = 0
    regex_seconds = 0.0
    max_output_chars: int = RenderLimits.max_output_chars
    max_loop_iterations: int = RenderLimits.max_loop_iterations
    max_depth: int = RenderLimits.max_depth
    max_steps: int = RenderLimits.max_steps
    max_work: int = RenderLimits.max_work
    max_int_bits: int = RenderLimits.max_int_bits
    regex_timeout: float = RenderLimits.regex_timeout
    regex_total: float = RenderLimits.regex_total
    # the environment rendering (helpers that compile, e.g. #evaluate, use its engine)
    env: Any = None


def budget_class(limits: RenderLimits, env: Any = None) -> type[RenderBudget]:
    """A RenderBudget subclass with these limits; `cls()` is a fresh budget."""
    return type(
        "EngineRenderBudget",
        (RenderBudget,),
        {
            "__init__": object.__init__,
            "max_output_chars": limits.max_output_chars,
            "max_loop_iterations": limits.max_loop_iterations,
            "max_depth": limits.max_depth,
            "max_steps": limits.max_steps,
            "max_work": limits.max_work,
            "max_int_bits": limits.max_int_bits,
            "regex_timeout": limits.regex_timeout,
            "regex_total": limits.regex_total,
            "env": env,
        },
    )


_budget: contextvars.ContextVar[RenderBudget | None] = contextvars.ContextVar(
    "template_budget", default=None
)

current_budget = _budget.get
set_budget = _budget.set
reset_budget = _budget.reset


@contextmanager
def render_budget(limits: RenderLimits | None = None, env: Any = None) -> Iterator[RenderBudget]:
    """A fresh budget for the code inside (what a render sets around its own code)."""
    budget = budget_class(limits or RenderLimits(), env)()
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


class NoBudget(TemplateSecurityError):
    """Template code ran where no render's budget is set (e.g. at compile time)."""


def active_budget() -> RenderBudget:
    """The running render's budget; outside a render nothing may be evaluated."""
    budget = _budget.get()
    if budget is None:
        _outside()
    return budget


def _outside() -> None:
    raise NoBudget(
        "template code cannot run outside a render (nothing is evaluated at compile time)"
    )


def count_iteration() -> None:
    budget = _budget.get()
    if budget is None:
        _outside()
    budget.iterations += 1
    if budget.iterations > budget.max_loop_iterations:
        raise TemplateLimitError(f"loop iteration limit exceeded ({budget.max_loop_iterations})")


def steps_exceeded(budget: RenderBudget) -> None:
    raise TemplateLimitError(f"step limit exceeded ({budget.max_steps} steps)")


def charge_steps(count: int) -> None:
    budget = _budget.get()
    if budget is None:
        _outside()
    budget.steps += count
    if budget.steps > budget.max_steps:
        steps_exceeded(budget)


def check_size(value: Any) -> Any:
    """Refuse a string/collection larger than the per-value limit (a value already built from
    bounded inputs; anything that multiplies sizes is checked before, with `reserve`)."""
    budget = _budget.get()
    if budget is None:
        _outside()
    try:
        size = len(value)
    except TypeError:
        return value
    if size > budget.max_output_chars:
        raise TemplateLimitError(f"value larger than the output limit ({budget.max_output_chars})")
    return value


def text_weight(text: str) -> int:
    """The work a text counts for: its length, times its storage width when it is long."""
    size = len(text)
    if size > 1024 and not text.isascii():
        return size * (2 if max(text) <= "\uffff" else 4)
    return size


# What the work budget counts, in bytes of memory: a character of text one, a slot of a list
# or tuple eight, an entry of a dict or set (its slot, hash and key object) 64, any other new
# object 32. A render builds and keeps at most `max_work` of them.
ITEM_BYTES = 8
ENTRY_BYTES = 64
OBJECT_BYTES = 32
# A new str or bytes object beside its characters (its header: 33 to 80 bytes): what each part
# of a split costs on top of its text, whatever its length.
TEXT_OBJECT_BYTES = 72


def stored_size(value: Any) -> int:
    """What keeping `value` in a collection counts for: a text its weight, a collection its
    slots (their own values were counted when they were built), anything else one object."""
    kind = type(value)
    if kind is str:
        return text_weight(value)
    if kind is bytes:
        return len(value) or 1
    if kind is list or kind is tuple:
        return ITEM_BYTES * (len(value) or 1)
    if kind is dict:
        return ENTRY_BYTES * (len(value) or 1)
    return OBJECT_BYTES


def collection_bytes(owner: Any, count: int) -> int:
    """The memory `count` new slots of `owner`'s kind take (entries for a dict or a set)."""
    if isinstance(owner, (dict, set, frozenset)) or owner in (dict, set, frozenset):
        return ENTRY_BYTES * count
    return ITEM_BYTES * count


def reserve(size: int, memory: int | None = None) -> None:
    """Before building a value of `size` characters/items: refuse it when it would pass the
    per-value limit, and count what it takes (`memory`, in the work budget's bytes; by
    default its size) against the render's work."""
    budget = _budget.get()
    if budget is None:
        _outside()
    limit = budget.max_output_chars
    if size > limit:
        raise TemplateLimitError(f"value larger than the output limit ({limit})")
    budget.produced += size if memory is None else memory
    if budget.produced > budget.max_work:
        raise TemplateLimitError(f"work limit exceeded (values built: {budget.produced})")
