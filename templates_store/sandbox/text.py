"""Turning template values into text without building more than the budget allows.

`str()` of a list that holds the same 900 kB string a thousand times is 900 MB, although the
list itself is small. Every place a template value becomes text (output, `~`, `join`, format
fields, filters) goes through `to_text`, which measures the exact length of the text first,
stopping as soon as it passes the limit, and only then builds it.
"""

from __future__ import annotations

from types import BuiltinFunctionType, FunctionType, MethodType, MethodWrapperType
from typing import Any

from jinja2.runtime import Undefined
from jinja2.utils import Namespace
from markupsafe import Markup

from .budget import _budget, _outside, charge_steps, reserve
from .errors import TemplateLimitError

__all__ = [
    "to_text",
    "text_size",
    "measure_text",
    "without_addresses",
    "SCALARS",
    "charge_tree",
    "charge_sort",
]

SCALARS = frozenset({int, float, bool, type(None)})
_DICT_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))
# repr nesting deeper than this is refused (Python's own repr would hit its recursion limit)
_MAX_NESTING = 200


class _Measure:
    __slots__ = ("total", "limit", "active", "str_sizes", "nodes", "opaque")

    def __init__(self, limit: int) -> None:
        self.total = 0
        self.limit = limit
        self.active: set[int] = set()
        self.str_sizes: dict[int, int] = {}
        # values visited: the walk's own cost (charged by to_text)
        self.nodes = 0
        # a value Python prints with its memory address was met (see `without_addresses`)
        self.opaque = False

    def add(self, size: int) -> None:
        self.nodes += 1
        self.total += size
        if self.total > self.limit:
            raise TemplateLimitError(f"value larger than the output limit ({self.limit})")

    def repr_size(self, value: Any, depth: int) -> None:
        """Adds len(repr(value)) (exactly, for the types templates hold)."""
        kind = type(value)
        if kind is str or kind is Markup or kind is bytes:
            key = id(value)
            size = self.str_sizes.get(key)
            if size is None:
                if len(value) + 2 > self.limit - self.total:
                    raise TemplateLimitError(f"value larger than the output limit ({self.limit})")
                size = len(repr(value))
                self.str_sizes[key] = size
            self.add(size)
            return
        if kind in SCALARS:
            if kind is int and value.bit_length() > 2048:
                _charge_int_text(value)
            self.add(len(repr(value)))
            return
        self.container(value, depth, as_repr=True)

    def container(self, value: Any, depth: int, as_repr: bool) -> None:
        if depth > _MAX_NESTING:
            raise TemplateLimitError("value nested too deeply to print")
        key = id(value)
        if isinstance(value, list):
            if key in self.active:
                self.add(5)  # [...]
                return
            self.items(value, key, "[", "]", depth)
        elif isinstance(value, tuple):
            if len(value) == 1:
                self.add(3)
                self.repr_size(value[0], depth + 1)
            else:
                self.items(value, key, "(", ")", depth)
        elif isinstance(value, dict):
            if key in self.active:
                self.add(5)  # {...}
                return
            self.add(2 + max(len(value) - 1, 0) * 2)
            self.active.add(key)
            try:
                for k, v in value.items():
                    self.add(2)
                    self.repr_size(k, depth + 1)
                    self.repr_size(v, depth + 1)
            finally:
                self.active.discard(key)
        elif isinstance(value, (set, frozenset)):
            if not value:
                self.add(len(repr(value)))
                return
            prefix = "" if type(value) is set else type(value).__name__ + "("
            self.add(len(prefix) + (1 if prefix else 0))
            self.items(list(value), key, "{", "}", depth)
        elif isinstance(value, _DICT_VIEWS):
            self.add(len(type(value).__name__) + 2)
            self.items(list(value), key, "[", "]", depth)
        elif isinstance(value, Namespace):
            self.add(len("<Namespace >"))
            self.container(value._Namespace__attrs, depth + 1, as_repr=True)  # type: ignore[attr-defined]
        elif isinstance(value, Undefined):
            self.add(len(repr(value)) if as_repr else len(str(value)))
        else:
            # everything else templates can hold prints a short, fixed-size text (functions,
            # methods, ranges, loop contexts, macros); what `without_addresses` shows instead
            # of a method's or an iterator's is shorter
            text = repr(value)
            if type(value) in _METHOD_TYPES or _ADDRESS in text:
                self.opaque = True
            self.add(len(text))

    def items(self, seq: Any, key: int, opening: str, closing: str, depth: int) -> None:
        self.add(2 + max(len(seq) - 1, 0) * 2)
        self.active.add(key)
        try:
            for item in seq:
                self.repr_size(item, depth + 1)
        finally:
            self.active.discard(key)


def _charge_int_text(value: int) -> None:
    """An integer's text is quadratic in its digits: charged when a render is running (the
    fast path's budget-less renders hand such values to Jinja first)."""
    if _budget.get() is not None:
        digits = value.bit_length() // 30 + 1
        charge_steps((digits * digits) >> 8)


# steps charged per value a measurement visits (a Python-level walk: about a microsecond each)
MEASURE_STEPS_PER_VALUE = 3


def text_size(value: Any, limit: int) -> int:
    """len(str(value)), computed without building it; TemplateLimitError past `limit`."""
    return measure_text(value, limit).total


def measure_text(value: Any, limit: int) -> _Measure:
    """The measurement of str(value) (its length and the values visited)."""
    kind = type(value)
    measure = _Measure(limit)
    if kind is str or kind is Markup:
        measure.add(len(value))
    elif kind in SCALARS:
        if kind is int and value.bit_length() > 2048:
            _charge_int_text(value)
        measure.add(len(str(value)))
    elif kind is bytes:
        measure.repr_size(value, 0)
    else:
        measure.container(value, 0, as_repr=False)
    return measure


# Values Python prints with the address of an object in memory (`<built-in method upper of
# str object at 0x7f...>`, `<generator object ... at 0x7f...>`): a tenant's render shows them
# as a fixed text instead, `<method upper>`, `<generator>`. Converted legacy templates print
# them as airspeed did, address included (`python_reprs` of their environment).
_METHOD_TYPES = frozenset({BuiltinFunctionType, MethodWrapperType, MethodType, FunctionType})
_ADDRESS = " at 0x"


class _Shown:
    """Stands for a value whose text would carry an address: prints as its fixed text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def shows_addresses() -> bool:
    """Whether the running render prints values as Python does, addresses included (converted
    legacy templates: airspeed did)."""
    budget = _budget.get()
    return budget is not None and bool(getattr(budget.env, "python_reprs", False))


def without_addresses(value: Any, measure: _Measure | None = None) -> Any:
    """`value`, or (when `measure` found one and the render does not print addresses) a copy
    of it where each method, generator or iterator is a `_Shown` fixed text: str(), repr() and
    %-formatting of the copy show no address. The copy is no longer than what was measured."""
    if measure is not None and not measure.opaque or shows_addresses():
        return value
    return _replaced(value, {})


def _replaced(value: Any, copies: dict[int, Any]) -> Any:
    kind = type(value)
    if kind in SCALARS or isinstance(value, (str, bytes, Undefined)):
        return value
    key = id(value)
    if key in copies:
        return copies[key]  # (shared or recursive: the copy keeps `[...]` where repr showed it)
    if isinstance(value, list):
        items: list = []
        copies[key] = items
        items.extend(_replaced(item, copies) for item in value)
        return items
    if isinstance(value, tuple):
        parts = [_replaced(item, copies) for item in value]
        return kind._make(parts) if hasattr(kind, "_make") else tuple(parts)
    if isinstance(value, dict):
        entries: dict = {}
        copies[key] = entries
        for k, v in value.items():
            entries[_replaced(k, copies)] = _replaced(v, copies)
        return entries
    if isinstance(value, (set, frozenset)):
        return type(value)(_replaced(item, copies) for item in value)
    if isinstance(value, _DICT_VIEWS):
        if isinstance(value, type({}.values())):
            return dict(enumerate(_replaced(item, copies) for item in value)).values()
        if isinstance(value, type({}.items())):
            return dict(_replaced(tuple(item), copies) for item in value).items()
        return dict.fromkeys(_replaced(item, copies) for item in value).keys()
    if isinstance(value, Namespace):
        return Namespace(_replaced(value._Namespace__attrs, copies))  # type: ignore[attr-defined]
    if kind in _METHOD_TYPES:
        return _Shown(f"<method {getattr(value, '__name__', '')}>")
    if _ADDRESS in repr(value):
        return _Shown(f"<{kind.__name__}>")
    return value


def to_text(value: Any) -> str:
    """str(value), refused before it is built when it would pass the per-value limit; the
    text of a non-string value counts against the render's work."""
    kind = type(value)
    if kind is str:
        return value
    if isinstance(value, str):  # Markup and other str subclasses keep their type
        return value
    budget = _budget.get()
    if budget is None:
        _outside()
    if kind in SCALARS:
        if kind is int and value.bit_length() > 2048:
            # int to text is quadratic in its digits
            digits = value.bit_length() // 30 + 1
            charge_steps((digits * digits) >> 8)
        return str(value)
    measure = measure_text(value, budget.max_output_chars)
    charge_steps(measure.nodes * MEASURE_STEPS_PER_VALUE)
    reserve(measure.total)
    return str(without_addresses(value, measure))


# what a comparison, search or hash walks item by item (dict views and sets too: `d.keys() ==
# d.keys()` compares every key)
_VIEWS = (type({}.keys()), type({}.values()), type({}.items()), set, frozenset)
_TREES = (list, tuple, dict, *_VIEWS)


def charge_tree(value: Any, times: int = 1) -> None:
    """Charge the walk a comparison, a search or a hash makes through `value`: one step per
    value it holds, nested values included however they are shared (`[a, a]` nested k deep
    holds 2**k values, though only k lists were built), texts by their length. The walk stops
    as soon as the budget does."""
    kind = type(value)
    if kind is str or kind is bytes or kind is Markup:
        if len(value) > 4096:
            charge_steps(times * (len(value) >> 8))
        return
    if kind is range:
        charge_steps(times * (len(value) >> 4))
        return
    if not isinstance(value, _TREES):
        return
    budget = _budget.get()
    if budget is None:
        _outside()
    pending = 0
    text = 0
    stack = [value]
    pop = stack.pop
    push = stack.extend
    while stack:
        item = pop()
        pending += 1
        if type(item) in SCALARS:
            pass
        elif isinstance(item, (list, tuple, *_VIEWS)):
            push(item)
        elif isinstance(item, dict):
            push(item.keys())
            push(item.values())
        elif isinstance(item, (str, bytes)):
            text += len(item)
        if pending >= 4096:
            charge_steps(times * (pending + (text >> 8)))
            pending = text = 0
    charge_steps(times * (pending + (text >> 8)))


def charge_sort(items: Any) -> None:
    """Charge sorting `items` (or taking their min, max or groups): about n log n comparisons,
    each walking the values it compares; the walk is charged once per pass of a merge (log n
    passes, a quarter of them counted: most comparisons stop at the first different item)."""
    n = len(items)
    charge_steps((n * max(n.bit_length(), 1)) >> 2)
    charge_tree(items, max(n.bit_length() >> 2, 1))
