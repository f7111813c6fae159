"""The one gate every attribute, item and method access from a template goes through.

Template values are JSON data (str, int, float, bool, None, list, dict) and what the engines
build from them (tuples, dict views, ranges, bytes, Markup, regex match results, loop contexts,
namespaces, macros). For each of those types an explicit allowlist names the methods that may
be called and the plain attributes that may be read; each method has a check that runs before
the call and refuses, from the arguments' sizes, any result or scan that would pass the render's
budget. Everything else is a TemplateSecurityError, whatever its name: no frame, code object,
generator internal, function global, module or class is reachable, because no attribute of
any other type is ever read.

Converted legacy templates may also call the pure special methods airspeed let them call
(`$s.__len__()`, `$n.__neg__()`, ...): those go through the same checks (`specials=True`).
Tenant-authored Jinja never reaches a name starting with `_` (Jinja's own sandbox rule, kept on
top of this gate).
"""

from __future__ import annotations

import _string
import codecs
import math
import operator
import re
import string
from collections.abc import Callable, Iterable
from itertools import islice
from types import BuiltinFunctionType, GeneratorType, MethodType, MethodWrapperType, ModuleType
from typing import Any

from jinja2.runtime import LoopContext, Macro, Undefined
from jinja2.utils import Namespace
from markupsafe import Markup, escape

from .budget import (
    ITEM_BYTES,
    OBJECT_BYTES,
    TEXT_OBJECT_BYTES,
    _budget,
    _outside,
    charge_steps,
    check_size,
    collection_bytes,
    reserve,
    stored_size,
    text_weight,
)
from .errors import TemplateLimitError, TemplateSecurityError
from .text import SCALARS, _Measure, charge_sort, charge_tree, to_text, without_addresses
from .text import measure_text as _measure_str

__all__ = [
    "MISSING",
    "attribute",
    "call",
    "call_method",
    "is_allowed_callable",
    "binop",
    "percent_format",
    "BoundedFormatter",
    "register_type",
    "allowed_methods",
]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

Check = Callable[[Any, tuple, dict], "tuple | None"]

# -- checks run before a call ------------------------------------------------------------------


def _limit() -> int:
    budget = _budget.get()
    if budget is None:
        _outside()
    return budget.max_output_chars


# A call through the gate costs CALL_STEPS steps (a step is about 0.4 microseconds here), plus a
# share of what it scans: C-speed text scans about 1 ns a character (1 step per 256),
# item-by-item comparisons about 20 ns an item (1 step per 16).
CALL_STEPS = 2


def _step(owner: Any, args: tuple, kwargs: dict) -> None:
    charge_steps(CALL_STEPS)


def _argument_text(args: tuple, kwargs: dict) -> int:
    """The characters a call's text arguments hold (a tuple of prefixes counts them all)."""
    size = 0
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, (str, bytes)):
            size += len(arg)
        elif isinstance(arg, tuple):
            size += len(arg) + sum(len(a) for a in arg if isinstance(a, (str, bytes)))
    return size


def _scan_text(owner: Any, args: tuple, kwargs: dict) -> None:
    # searching is O(text + pattern) on average; a search may compare each position (5 ns a
    # character on bad patterns: one step per 64)
    if not hasattr(owner, "__len__"):
        charge_steps(CALL_STEPS + (_argument_text(args, kwargs) >> 6))
        return
    charge_steps(CALL_STEPS + ((len(owner) + _argument_text(args, kwargs)) >> 6))


def _scan_items(owner: Any, args: tuple, kwargs: dict) -> None:
    # each item compared with the arguments: the walk through every nested value is charged
    charge_steps(CALL_STEPS)
    charge_tree(owner)
    for arg in (*args, *kwargs.values()):
        charge_tree(arg)


def _copy_text(owner: Any, args: tuple, kwargs: dict) -> None:
    # a strip with characters checks each stripped character against them
    chars = _argument_text(args, kwargs)
    charge_steps(CALL_STEPS + (len(owner) >> 10) + ((len(owner) * chars) >> 10))
    reserve(len(owner))


def _copy_items(owner: Any, args: tuple, kwargs: dict) -> None:
    charge_steps(CALL_STEPS + (len(owner) >> 4))
    reserve(len(owner), collection_bytes(owner, len(owner)))


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _pad(owner: Any, args: tuple, kwargs: dict) -> None:
    width = _arg(args, kwargs, 0, "width")
    if isinstance(width, int):
        charge_steps(CALL_STEPS)
        reserve(max(width, len(owner)))


def _expandtabs(owner: Any, args: tuple, kwargs: dict) -> None:
    tabsize = _arg(args, kwargs, 0, "tabsize", 8)
    if isinstance(tabsize, int):
        charge_steps(CALL_STEPS + (len(owner) >> 8))
        tab = b"\t" if type(owner) is bytes else "\t"
        reserve(len(owner) + owner.count(tab) * max(tabsize, 0))


def _replace(owner: Any, args: tuple, kwargs: dict) -> None:
    old, new = _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new")
    count = _arg(args, kwargs, 2, "count", -1)
    if not isinstance(old, (str, bytes)) or not isinstance(new, (str, bytes)):
        return
    charge_steps(CALL_STEPS + (len(owner) >> 8))
    found = owner.count(old) if old else len(owner) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    reserve(len(owner) + found * max(len(new) - len(old), 0))


def _bounded_items(values: Any) -> list:
    """The items of an iterable argument, refused past the per-value limit before they are all
    produced (a generator or a range is never run to the end first)."""
    limit = _limit()
    if isinstance(values, (list, tuple, str, dict, range, bytes)) or hasattr(values, "__len__"):
        if len(values) > limit:
            raise TemplateLimitError(f"value larger than the output limit ({limit})")
        # the items of a text or a range are new objects (but ASCII characters and small
        # integers, which Python shares): a million of them take tens of megabytes
        if isinstance(values, str) and not values.isascii():
            reserve(len(values), len(values) * TEXT_OBJECT_BYTES)
        elif isinstance(values, range) and len(values) > 256:
            reserve(len(values), len(values) * OBJECT_BYTES)
        return list(values)
    items = list(islice(values, limit + 1))
    if len(items) > limit:
        raise TemplateLimitError(f"value larger than the output limit ({limit})")
    return items


def _join(owner: Any, args: tuple, kwargs: dict) -> tuple | None:
    if len(args) != 1 or kwargs:
        return None  # (the call itself refuses the arguments, as Python does)
    items = _bounded_items(_arg(args, kwargs, 0, "iterable", ()))
    charge_steps(CALL_STEPS + (len(items) >> 4))
    total = len(owner) * max(len(items) - 1, 0)
    for item in items:
        if isinstance(item, (str, bytes)):
            total += len(item)
    reserve(total)
    return (items,)


def _translate(owner: Any, args: tuple, kwargs: dict) -> None:
    table = _arg(args, kwargs, 0, "table")
    longest = 1
    replacements: Any = ()
    if isinstance(table, dict):
        replacements = table.values()
    elif isinstance(table, (list, tuple)):
        replacements = table
    if hasattr(table, "__len__"):
        charge_steps(CALL_STEPS + (len(table) >> 4))
    for value in replacements:
        if isinstance(value, str):
            longest = max(longest, len(value))
    charge_steps(CALL_STEPS + (len(owner) >> 6))
    reserve(len(owner) * longest)


# Python's text encodings, by canonical name: each implemented in C (or a thin wrapper of one)
# and linear in the text. Left out: punycode (quadratic, pure Python) and idna (punycode's).
_CODECS = frozenset(
    {
        *("utf-8", "utf-8-sig", "utf-7", "ascii", "latin-1", "iso8859-1", "charmap"),
        *("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"),
        *("unicode-escape", "raw-unicode-escape"),
        *("gbk", "gb2312", "gb18030", "hz", "big5", "big5hkscs", "cp950"),
        *("shift_jis", "shift_jis_2004", "shift_jisx0213", "cp932", "euc_jp", "euc_jis_2004"),
        *("euc_jisx0213", "euc_kr", "cp949", "johab"),
        *("iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3"),
        *("iso2022_jp_ext", "iso2022_kr"),
        *(f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)),
        *(f"cp{n}" for n in (1250, 1251, 1252, 1253, 1254, 1255, 1256, 1257, 1258)),
        *(f"cp{n}" for n in (437, 775, 850, 852, 855, 857, 858, 860, 861, 862, 863, 864)),
        *(f"cp{n}" for n in (865, 866, 869, 874, 875, 1125, 273, 424, 500, 1026, 1140)),
        "cp037",
        *("mac-roman", "mac-cyrillic", "mac-greek", "mac-iceland", "mac-latin2", "mac-turkish"),
        *("koi8-r", "koi8-u", "koi8-t", "kz1048", "ptcp154", "tis-620", "hp-roman8"),
    }
)
# bytes per character an encoding may write, at most (the rest: 4, as UTF-32 does)
_CODEC_GROWTH = {
    "unicode-escape": 10,
    "raw-unicode-escape": 10,
    **dict.fromkeys((name for name in _CODECS if name.startswith("iso2022")), 8),
    "utf-7": 5,
}


def codec_allowed(name: object) -> bool:
    """Whether `name` (as a template wrote it) names an encoding the sandbox allows."""
    if not isinstance(name, str):
        return False
    try:
        return codecs.lookup(name).name in _CODECS
    except LookupError:
        return False


def _encode(owner: Any, args: tuple, kwargs: dict) -> None:
    if isinstance(owner, (bytes, bytearray)) and not owner:
        charge_steps(CALL_STEPS)
        return  # (Python decodes empty bytes to '' without looking the codec up)
    name = _arg(args, kwargs, 0, "encoding", "utf-8")
    growth = 4
    if isinstance(name, str):
        if not codec_allowed(name):
            raise TemplateSecurityError(f"the {name!r} codec is not allowed")
        growth = _CODEC_GROWTH.get(codecs.lookup(name).name, 4)
    charge_steps(CALL_STEPS + (len(owner) >> 8))
    reserve(len(owner) * growth)


def _hex(owner: Any, args: tuple, kwargs: dict) -> None:
    # two digits a byte, and a one-character separator between groups (Python refuses a
    # longer one)
    charge_steps(CALL_STEPS + (len(owner) >> 8))
    reserve(len(owner) * 3)


def _case(owner: Any, args: tuple, kwargs: dict) -> None:
    # a case mapping may lengthen a text (German sharp s: 'ß'.upper() == 'SS'), at most 3 times
    charge_steps(CALL_STEPS + (len(owner) >> 8))
    reserve(len(owner) * 3 if not owner.isascii() else len(owner))


# What str.split() / bytes.split() split at, and what splitlines() ends a line at ('\r\n' is
# counted twice: an upper bound is enough)
_ASCII_SPACES = tuple("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ")
_SPACES = (
    *_ASCII_SPACES,
    *"\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000",
    *map(chr, range(0x2000, 0x200B)),
)
_LINE_BREAKS = tuple("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_BYTES_SPACES = tuple(bytes([c]) for c in b" \t\n\r\x0b\x0c")
_BYTES_LINE_BREAKS = (b"\n", b"\r")


def _separators(owner: Any, name: str) -> tuple:
    """The separators a split without one given may cut `owner` at."""
    if isinstance(owner, bytes):
        return _BYTES_LINE_BREAKS if name == "splitlines" else _BYTES_SPACES
    if name == "splitlines":
        return _LINE_BREAKS
    return _ASCII_SPACES if owner.isascii() else _SPACES


def _split_check(name: str) -> Check:
    """A split makes a new text object and a list slot per part, however short the part: the
    most parts it can make (one more than the separators it may cut at, at most `maxsplit`
    plus one, at most one per two characters between whitespace) are reserved before it runs,
    beside the characters it copies."""

    def check(owner: Any, args: tuple, kwargs: dict) -> None:
        size = len(owner)
        sep = None if name == "splitlines" else _arg(args, kwargs, 0, "sep")
        if sep is None:
            separators = _separators(owner, name)
            charge_steps(CALL_STEPS + (size >> 4) + ((size * len(separators)) >> 10))
            parts = sum(map(owner.count, separators)) + 1
            if name != "splitlines":
                parts = min(parts, (size + 1) // 2 + 1)
        elif not isinstance(sep, str if isinstance(owner, str) else bytes) or not sep:
            charge_steps(CALL_STEPS)
            return  # (Python refuses the separator itself)
        else:
            charge_steps(CALL_STEPS + (size >> 4))
            parts = owner.count(sep) + 1
        maxsplit = _arg(args, kwargs, 1, "maxsplit", -1)
        if name != "splitlines" and type(maxsplit) is int and maxsplit >= 0:
            parts = min(parts, maxsplit + 1)
        chars = text_weight(owner) if isinstance(owner, str) else size
        reserve(parts, chars + parts * (ITEM_BYTES + TEXT_OBJECT_BYTES))

    return check


def _maketrans(owner: Any, args: tuple, kwargs: dict) -> None:
    size = sum(len(a) for a in args if isinstance(a, (str, dict)))
    charge_steps(CALL_STEPS + (size >> 4))
    reserve(size)


def _to_bytes(owner: Any, args: tuple, kwargs: dict) -> None:
    length = _arg(args, kwargs, 0, "length", 1)
    if isinstance(length, int):
        charge_steps(CALL_STEPS)
        reserve(length)


def _from_iterable(owner: Any, args: tuple, kwargs: dict) -> tuple | None:
    if not 1 <= len(args) <= 2 or kwargs:
        return None  # (the call itself refuses the arguments, as Python does)
    items = _bounded_items(_arg(args, kwargs, 0, "iterable", ()))
    # one step and one slot (or entry) per item: `dict.fromkeys(range(n))` hashes n new ints
    charge_steps(CALL_STEPS + len(items))
    charge_hashed(items)
    reserve(len(items), collection_bytes(owner, len(items)) + OBJECT_BYTES * len(items))
    return (items, *args[1:])


def _fromhex(owner: Any, args: tuple, kwargs: dict) -> None:
    charge_steps(CALL_STEPS + (_argument_text(args, kwargs) >> 4))


def _move_items(owner: Any, args: tuple, kwargs: dict) -> None:
    charge_steps(CALL_STEPS + (len(owner) >> 6))


def _grow_by_one(owner: Any, args: tuple, kwargs: dict) -> None:
    # (an insert moves every item after it; a dict's setdefault hashes its key)
    charge_steps(CALL_STEPS + (len(owner) >> 6))
    if type(owner) is dict:
        charge_hashed(args[:1])
    reserve(1, collection_bytes(owner, 1) + (stored_size(args[-1]) if args else 0))
    if len(owner) + 1 > _limit():
        raise TemplateLimitError(f"value larger than the output limit ({_limit()})")


def _extend(owner: Any, args: tuple, kwargs: dict) -> tuple | None:
    if len(args) != 1 or kwargs:
        return None  # (the call itself refuses the arguments, as Python does)
    items = _bounded_items(_arg(args, kwargs, 0, "iterable", ()))
    limit = _limit()
    if len(owner) + len(items) > limit:
        raise TemplateLimitError(f"value larger than the output limit ({limit})")
    charge_steps(CALL_STEPS + len(items))
    reserve(len(items), ITEM_BYTES * len(items) + sum(map(stored_size, items)))
    return (items,)


def _update(owner: Any, args: tuple, kwargs: dict) -> None:
    size = len(kwargs)
    for arg in args:
        size += len(arg) if hasattr(arg, "__len__") else _limit() + 1
    limit = _limit()
    if len(owner) + size > limit:
        raise TemplateLimitError(f"value larger than the output limit ({limit})")
    # one step per entry: each is hashed and stored
    charge_steps(CALL_STEPS + size)
    # what the entries hold: a mapping's values, or the value of each (key, value) pair
    stored = sum(map(stored_size, kwargs.values()))
    for arg in args:
        values = arg.values() if isinstance(arg, dict) else (_pair(p)[1] for p in arg)
        stored += sum(map(stored_size, values))
        if not isinstance(arg, dict):
            charge_pair_keys(arg)
    reserve(size, collection_bytes(dict, size) + stored)


def _merge(owner: Any, args: tuple, kwargs: dict) -> None:
    """`d | other`: a new dict when `other` is one; anything else answers NotImplemented
    without any work."""
    if len(args) == 1 and not kwargs and isinstance(args[0], dict):
        _update(owner, args, kwargs)


def charge_hashed(keys: Iterable) -> None:
    """Hashing a tuple walks every value nested in it (Python keeps no tuple's hash): charged
    for each key a call hashes (a dict's own keys are not hashed again when it is copied)."""
    for key in keys:
        if type(key) is tuple:
            charge_tree(key)


def _hashed_arguments(owner: Any, args: tuple, kwargs: dict) -> None:
    charge_steps(CALL_STEPS)
    charge_hashed(args[:1])


def charge_pair_keys(pairs: Iterable) -> None:
    """charge_hashed for the keys of the (key, value) pairs given to a dict."""
    charge_hashed(_pair(pair)[0] for pair in pairs)


def _pair(pair: Any) -> tuple[Any, Any]:
    """A (key, value) pair given to `update` or `dict()` (anything else is refused by the call
    itself, and counts for nothing here)."""
    if type(pair) in (list, tuple) and len(pair) == 2:
        return pair[0], pair[1]
    return None, None


def _sort(owner: Any, args: tuple, kwargs: dict) -> None:
    # the comparisons walk nested values (a list of lists compares them item by item), as
    # the `sort` filter charges them
    charge_steps(CALL_STEPS)
    charge_sort(owner)


def _text_of_owner(owner: Any, args: tuple, kwargs: dict) -> None:
    to_text(owner)  # measured (and counted) before str()/repr() builds it


def _repr_of_owner(owner: Any, args: tuple, kwargs: dict) -> None:
    measure = _Measure(_limit())
    measure.repr_size(owner, 0)
    reserve(measure.total)


def _number_computes(owner: Any, args: tuple) -> bool:
    """Whether a number's special method computes with these arguments: an int's only with
    ints, a float's with ints and floats, a modulo (pow's third) only an int; any other
    argument answers NotImplemented at once (`$n.__mul__('x')`), so nothing is checked."""
    accepted = (int, float) if type(owner) is float else (int,)
    if not args or not isinstance(args[0], accepted):
        return False
    return len(args) < 2 or type(args[1]) is int


def _binop_check(op: str, reflected: bool = False) -> Check:
    """The check of a special method computing `owner <op> arg` (`arg <op> owner` when
    `reflected`), as the operator would be checked; with a modulo (pow's third argument) the
    work is a modular power's."""

    def check(owner: Any, args: tuple, kwargs: dict) -> None:
        if not args or isinstance(owner, (int, float)) and not _number_computes(owner, args):
            return
        left, right = (args[0], owner) if reflected else (owner, args[0])
        if len(args) > 1 and op == "**":
            _modular_pow(left, right, args[1])
        else:
            check_binop(op, left, right)

    return check


def _modular_pow(base: Any, exponent: Any, modulo: Any) -> None:
    """pow(base, exponent, modulo) stays below the modulo, but it squares (and reduces modulo
    `modulo`) once per bit of the exponent: each step is quadratic in the modulo's 30-bit
    digits, as `big_int_steps` counts a multiplication, with a linear share that small moduli
    still cost (a 16,000-bit exponent modulo 97 takes 0.3 ms; modulo a 16,000-bit number, 11 s).
    The base is reduced modulo `modulo` first."""
    if not isinstance(exponent, int) or not isinstance(modulo, int):
        charge_steps(CALL_STEPS)
        return
    digits = abs(modulo).bit_length() // 30 + 1
    # measured: about 1.5 multiplications and reductions a bit (a sliding window)
    per_bit = (3 * digits * digits) // 2 + 24 * digits
    steps = (abs(exponent).bit_length() * per_bit) >> 8
    if isinstance(base, int):
        steps += ((abs(base).bit_length() // 30 + 1) * digits) >> 6
    charge_steps(CALL_STEPS + steps)


def _format_spec_check(owner: Any, args: tuple, kwargs: dict) -> None:
    spec = _arg(args, kwargs, 0, "format_spec", "")
    if isinstance(spec, str):
        check_format_spec(spec)
    if isinstance(owner, str):
        reserve(len(owner))
    else:
        to_text(owner)  # (an empty spec prints the value: measured first)


# -- the allowlists -----------------------------------------------------------------------------

_TEXT_METHODS: dict[str, Check] = {
    **dict.fromkeys(
        (
            "count",
            "endswith",
            "find",
            "index",
            "isalnum",
            "isalpha",
            "isascii",
            "isdecimal",
            "isdigit",
            "isidentifier",
            "islower",
            "isnumeric",
            "isprintable",
            "isspace",
            "istitle",
            "isupper",
            "rfind",
            "rindex",
            "startswith",
        ),
        _scan_text,
    ),
    **dict.fromkeys(
        ("strip", "lstrip", "rstrip", "removeprefix", "removesuffix", "partition", "rpartition"),
        _copy_text,
    ),
    **dict.fromkeys(("upper", "lower", "casefold", "swapcase", "title", "capitalize"), _case),
    **{name: _split_check(name) for name in ("split", "rsplit", "splitlines")},
    **dict.fromkeys(("center", "ljust", "rjust", "zfill"), _pad),
    "expandtabs": _expandtabs,
    "replace": _replace,
    "join": _join,
    "translate": _translate,
    "encode": _encode,
}
_BYTES_METHODS: dict[str, Check] = {
    name: check
    for name, check in _TEXT_METHODS.items()
    if name
    not in (
        "casefold",
        "isdecimal",
        "isidentifier",
        "isnumeric",
        "isprintable",
        "encode",
        "translate",
    )
}
_BYTES_METHODS.update({"decode": _encode, "hex": _hex})

_LIST_METHODS: dict[str, Check] = {
    "append": _grow_by_one,
    "insert": _grow_by_one,
    "extend": _extend,
    "copy": _copy_items,
    "count": _scan_items,
    "index": _scan_items,
    "remove": _scan_items,
    "pop": _move_items,
    "clear": _step,
    "reverse": _move_items,
    "sort": _sort,
}
_DICT_METHODS: dict[str, Check] = {
    "get": _hashed_arguments,
    "items": _step,
    "keys": _step,
    "values": _step,
    "pop": _hashed_arguments,
    "popitem": _step,
    "setdefault": _grow_by_one,
    "clear": _step,
    "copy": _copy_items,
    "update": _update,
    "fromkeys": _from_iterable,
}
_INT_METHODS: dict[str, Check] = {
    "bit_length": _step,
    "bit_count": _step,
    "conjugate": _step,
    "as_integer_ratio": _step,
    "to_bytes": _to_bytes,
    "from_bytes": _step,
}
_FLOAT_METHODS: dict[str, Check] = {
    "as_integer_ratio": _step,
    "conjugate": _step,
    "hex": _step,
    "is_integer": _step,
    "fromhex": _fromhex,
}
_SEQUENCE_METHODS: dict[str, Check] = {"count": _scan_items, "index": _scan_items}

# Pure special methods converted legacy templates may call (airspeed allowed any name).
_COMPARISONS = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__")
_BASE_SPECIALS: dict[str, Check] = {
    "__len__": _step,
    "__contains__": _scan_items,
    "__getitem__": _step,
    "__bool__": _step,
    "__str__": _text_of_owner,
    "__repr__": _repr_of_owner,
    "__format__": _format_spec_check,
    **dict.fromkeys(_COMPARISONS, _scan_items),
}


def _number_step(owner: Any, args: tuple, kwargs: dict) -> None:
    """A numeric special method: big integers cost by their size (division is quadratic)."""
    bits = owner.bit_length() if type(owner) is int else 0
    for arg in args:
        if type(arg) is int:
            bits = max(bits, arg.bit_length())
    charge_steps(CALL_STEPS + (big_int_steps(bits) if bits > 2048 else 0))


def _round_step(owner: Any, args: tuple, kwargs: dict) -> None:
    """Rounding an integer to -n digits computes 10**n first."""
    ndigits = _arg(args, kwargs, 0, "ndigits")
    if (
        type(owner) is int
        and type(ndigits) is int
        and ndigits < 0
        and -ndigits * 3.33 > _int_bits_limit()
    ):
        raise TemplateLimitError(f"integer larger than {_int_bits_limit()} bits")
    _number_step(owner, args, kwargs)


_NUMBER_SPECIALS: dict[str, Check] = {
    **dict.fromkeys(
        (
            "__neg__",
            "__pos__",
            "__abs__",
            "__invert__",
            "__int__",
            "__float__",
            "__index__",
            "__round__",
            "__trunc__",
            "__floor__",
            "__ceil__",
            "__truediv__",
            "__rtruediv__",
            "__floordiv__",
            "__rfloordiv__",
            "__mod__",
            "__rmod__",
            "__divmod__",
            "__rdivmod__",
            "__sub__",
            "__rsub__",
            "__add__",
            "__radd__",
            "__and__",
            "__rand__",
            "__or__",
            "__ror__",
            "__xor__",
            "__rxor__",
            "__rshift__",
        ),
        _number_step,
    ),
    "__mul__": _binop_check("*"),
    "__rmul__": _binop_check("*", reflected=True),
    "__pow__": _binop_check("**"),
    "__rpow__": _binop_check("**", reflected=True),
    "__round__": _round_step,
    "__lshift__": _binop_check("<<"),
    "__rlshift__": _binop_check("<<", reflected=True),
}
_SEQUENCE_SPECIALS: dict[str, Check] = {
    "__add__": _binop_check("+"),
    "__radd__": _binop_check("+", reflected=True),
    "__mul__": _binop_check("*"),
    "__rmul__": _binop_check("*"),
}

# type -> (methods, plain attributes, special methods)
_METHODS: dict[type, dict[str, Check]] = {}
_ATTRIBUTES: dict[type, frozenset[str]] = {}
_SPECIALS: dict[type, dict[str, Check]] = {}
# methods the gate runs itself instead of the type's own (bounded formatting)
_REPLACED: dict[tuple[type, str], Callable[..., Any]] = {}


# (class, name) of allowed class methods reached through an instance (`$d.fromkeys(...)`)
_CLASS_METHODS: dict[tuple[type, str], Check] = {
    (dict, "fromkeys"): _from_iterable,
    (int, "from_bytes"): _step,
    (bool, "from_bytes"): _step,
    (float, "fromhex"): _fromhex,
}
# static builtins reached through an instance (`''.maketrans`)
_STATIC: dict[int, tuple[Any, Check]] = {id(str.maketrans): (str.maketrans, _maketrans)}
_DIR_CACHE: dict[type, frozenset[str]] = {}


def register_type(
    kind: type,
    methods: dict[str, Check] | None = None,
    attributes: Iterable[str] = (),
    specials: dict[str, Check] | None = None,
) -> None:
    """Allow `kind` as a template value with these methods, attributes and special methods
    (special methods that the type does not have are left out)."""
    # (what the type's instances have: hasattr on the type would also find the metaclass's
    # own, such as type.__or__, which makes `int | str`; and a table shared by several
    # types lists names only some have: dict_values has no isdisjoint)
    names = set(dir(kind))
    _METHODS[kind] = {name: check for name, check in (methods or {}).items() if name in names}
    _ATTRIBUTES[kind] = frozenset(attributes)
    _SPECIALS[kind] = {name: check for name, check in (specials or {}).items() if name in names}


def allowed_methods(kind: type) -> frozenset[str]:
    """The method and attribute names templates may use on values of `kind` (the converter
    reports a legacy call the sandbox would refuse)."""
    return frozenset(_METHODS.get(kind, {})) | _ATTRIBUTES.get(kind, frozenset())


def allowed_specials(kind: type) -> frozenset[str]:
    return frozenset(_SPECIALS.get(kind, {}))


_DICT_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))

register_type(str, _TEXT_METHODS, (), {**_BASE_SPECIALS, **_SEQUENCE_SPECIALS})
register_type(Markup, {**_TEXT_METHODS, "unescape": _copy_text, "striptags": _copy_text})
register_type(bytes, _BYTES_METHODS, (), {**_BASE_SPECIALS, **_SEQUENCE_SPECIALS})
register_type(list, _LIST_METHODS, (), {**_BASE_SPECIALS, **_SEQUENCE_SPECIALS})
register_type(tuple, _SEQUENCE_METHODS, (), {**_BASE_SPECIALS, **_SEQUENCE_SPECIALS})
register_type(
    dict,
    _DICT_METHODS,
    (),
    {**_BASE_SPECIALS, "__or__": _merge, "__ror__": _merge, "__ior__": _update},
)
register_type(
    int,
    _INT_METHODS,
    ("real", "imag", "numerator", "denominator"),
    {
        **_BASE_SPECIALS,
        **_NUMBER_SPECIALS,
    },
)
register_type(
    bool,
    _INT_METHODS,
    ("real", "imag", "numerator", "denominator"),
    {
        **_BASE_SPECIALS,
        **_NUMBER_SPECIALS,
    },
)
register_type(float, _FLOAT_METHODS, ("real", "imag"), {**_BASE_SPECIALS, **_NUMBER_SPECIALS})
# values that only print and compare (a format spec other than "" raises: nothing to bound);
# NotImplemented is what a special comparison of unlike values returns (`$n.__eq__('x')`)
_PRINTABLE_SPECIALS: dict[str, Check] = dict.fromkeys(
    ("__bool__", "__str__", "__repr__", "__format__", *_COMPARISONS), _step
)
register_type(type(None), {}, (), _PRINTABLE_SPECIALS)
register_type(type(NotImplemented), {}, (), _PRINTABLE_SPECIALS)
register_type(
    range,
    _SEQUENCE_METHODS,
    ("start", "stop", "step"),
    {
        "__len__": _step,
        "__contains__": _step,
        "__getitem__": _step,
        **_PRINTABLE_SPECIALS,
    },
)
for _view in _DICT_VIEWS:
    register_type(
        _view,
        {"isdisjoint": _scan_items},
        (),
        {
            "__len__": _step,
            "__contains__": _scan_items,
            "__str__": _text_of_owner,
            "__repr__": _repr_of_owner,
            "__format__": _format_spec_check,
            **dict.fromkeys(_COMPARISONS, _scan_items),
        },
    )
register_type(
    LoopContext,
    {"cycle": _step, "changed": _step},
    (
        "index",
        "index0",
        "revindex",
        "revindex0",
        "first",
        "last",
        "length",
        "depth",
        "depth0",
        "previtem",
        "nextitem",
    ),
)


# Values templates may hold but never look into: any attribute they have is refused, one they
# do not have is missing (airspeed printed `$b.items.k` literally: a bound method has no `k`)
for _opaque in (
    BuiltinFunctionType,
    MethodWrapperType,
    MethodType,
    GeneratorType,
    Macro,
):
    register_type(_opaque)


def _type_names(kind: type) -> frozenset[str]:
    names = _DIR_CACHE.get(kind)
    if names is None:
        names = frozenset(dir(kind))
        _DIR_CACHE[kind] = names
    return names


def _refuse(obj: Any, name: str) -> None:
    raise TemplateSecurityError(
        f"access to attribute {name!r} of {type(obj).__name__!r} object is not allowed"
    )


# -- attribute and item access ------------------------------------------------------------------


def attribute(obj: Any, name: str, specials: bool = False) -> Any:
    """`obj.name` through the allowlist: the value (a bound method for a method), MISSING when
    the type has no such attribute, TemplateSecurityError when it has one that is not allowed
    (or when the type is not a template value type at all)."""
    kind = type(obj)
    methods = _METHODS.get(kind)
    if methods is None:
        if kind is Namespace:
            if name[:1] == "_":
                _refuse(obj, name)
            try:
                return getattr(obj, name)
            except AttributeError:
                return MISSING
        if isinstance(obj, Undefined) and name[:1] != "_":
            obj._fail_with_undefined_error()
        _refuse(obj, name)
    if name in methods or name in _ATTRIBUTES[kind]:
        return getattr(obj, name)
    if specials and name in _SPECIALS[kind]:
        return getattr(obj, name)
    if name in _type_names(kind) or (name[:1] == "_" and not (specials and kind in _SLOTLESS)):
        _refuse(obj, name)
    # (Velocity: a special name the type does not have is missing, as airspeed found it; a
    # slotless builtin has no attribute its type does not list, and nothing was read)
    return MISSING


def item(obj: Any, key: Any) -> Any:
    """`obj[key]` with Python's own errors (KeyError, IndexError, TypeError), on the types
    templates hold; anything else is refused."""
    kind = type(obj)
    if kind in _ITEM_TYPES or isinstance(obj, (dict, list, tuple, str)):
        if type(key) is slice:
            # the slice's length is known before it is built
            size = len(range(*key.indices(len(obj))))
            charge_steps(CALL_STEPS + (size >> 6))
            reserve(size)
            return obj[key]
        if type(key) is tuple:
            charge_tree(key)  # (hashed: every nested value)
        return obj[key]
    if isinstance(obj, Undefined):
        obj._fail_with_undefined_error()
    if kind in _SCALAR_TYPES or not (isinstance(obj, type) or hasattr(kind, "__getitem__")):
        # (a method object, say: Python refuses it itself, no code of the object runs)
        raise TypeError(f"'{kind.__name__}' object is not subscriptable")
    raise TemplateSecurityError(f"indexing a {kind.__name__!r} object is not allowed")


_SCALAR_TYPES = frozenset({int, float, bool, type(None)})


_ITEM_TYPES = {dict, list, tuple, str, Markup, bytes, range}


def register_item_type(kind: type) -> None:
    """Allow `value[key]` on values of `kind` (its own __getitem__ must be pure)."""
    _ITEM_TYPES.add(kind)


# -- calls -----------------------------------------------------------------------------------------

_BOUND_TYPES = (BuiltinFunctionType, MethodWrapperType, MethodType)
# callables a template may call besides allowed bound methods: registered per environment
# (globals such as range/dict/namespace) by identity, and these types
_CALLABLE_TYPES: set[type] = {Macro, LoopContext}
_SAFE_CALLABLES: dict[int, Any] = {}


def register_callable(func: Any) -> None:
    """Allow calling `func` itself (an environment global such as a bounded `range`)."""
    _SAFE_CALLABLES[id(func)] = func


def register_callable_type(kind: type) -> None:
    """Allow calling instances of `kind` (the engine's own callables, e.g. Velocity shims)."""
    _CALLABLE_TYPES.add(kind)


def _method_check(func: Any, specials: bool) -> tuple[Check | None, Any] | None:
    """(check, owner) for an allowed bound method; None when `func` is not one."""
    kind = type(func)
    if kind not in _BOUND_TYPES:
        return None
    owner = func.__self__
    name = func.__func__.__name__ if kind is MethodType else func.__name__
    if kind is BuiltinFunctionType and (owner is None or isinstance(owner, ModuleType)):
        # a static builtin reached through an instance (`''.maketrans`), never a module's
        static = _STATIC.get(id(func))
        if static is not None and static[0] is func:
            return static[1], owner
        return None
    if isinstance(owner, type):
        check = _CLASS_METHODS.get((owner, name))
        return (check, owner) if check is not None else None
    methods = _METHODS.get(type(owner))
    if methods is None:
        return None
    check = methods.get(name)
    if check is None and specials:
        check = _SPECIALS[type(owner)].get(name)
    if check is None:
        return None
    # the bound method must be the type's own (a data attribute shadowing it is not a method)
    return check, owner


def is_allowed_callable(func: Any, specials: bool = False) -> bool:
    return (
        type(func) in _CALLABLE_TYPES
        or _SAFE_CALLABLES.get(id(func)) is func
        or _method_check(func, specials) is not None
    )


def call(func: Any, args: tuple = (), kwargs: dict | None = None, specials: bool = False) -> Any:
    """Call a value a template holds: an allowed bound method (checked before the call), a
    registered global or engine callable; anything else is refused."""
    kwargs = kwargs or {}
    checked = _method_check(func, specials)
    if checked is not None:
        check, owner = checked
        replaced = _REPLACED.get((type(owner), _name_of(func)))
        if replaced is not None:
            charge_steps(CALL_STEPS)
            return replaced(owner, args, kwargs)
        if check is not None:
            new_args = check(owner, args, kwargs)
            if new_args is not None:
                args = new_args
        else:
            charge_steps(CALL_STEPS)
        result = func(*args, **kwargs)
        if type(result) is int:
            _check_int(result)
        elif type(result) in _SIZED:
            check_size(result)
        if type(owner) in _MUTABLE:
            check_size(owner)
        return result
    if type(func) in _CALLABLE_TYPES or _SAFE_CALLABLES.get(id(func)) is func:
        charge_steps(CALL_STEPS)
        return func(*args, **kwargs)
    if not callable(func):
        raise TypeError(f"'{type(func).__name__}' object is not callable")
    raise TemplateSecurityError(f"calling a {type(func).__name__!r} object is not allowed")


# Methods of a short text (under 64 characters) called without arguments: their cost and result
# are those of any one operation, which the operation's own weight covers (the fast path
# computes them inline under the same rule); a longer text goes through the method's check
SHORT_TEXT = 64
SHORT_TEXT_METHODS = frozenset(
    {
        "upper",
        "lower",
        "title",
        "capitalize",
        "swapcase",
        "casefold",
        "strip",
        "lstrip",
        "rstrip",
        "isalnum",
        "isalpha",
        "isascii",
        "isdecimal",
        "isdigit",
        "isidentifier",
        "islower",
        "isnumeric",
        "isprintable",
        "isspace",
        "istitle",
        "isupper",
    }
)


def call_method(obj: Any, name: str, args: tuple, specials: bool = False) -> Any:
    """`obj.name(*args)` in one step (no bound method is handed out); MISSING when the type
    has no such attribute. Refused as `attribute` refuses."""
    kind = type(obj)
    if kind is str and not args and name in SHORT_TEXT_METHODS and len(obj) < SHORT_TEXT:
        return getattr(obj, name)()
    methods = _METHODS.get(kind)
    if methods is not None:
        check = methods.get(name)
        if check is None and specials:
            check = _SPECIALS[kind].get(name)
        if check is not None:
            replaced = _REPLACED.get((kind, name))
            if replaced is not None:
                charge_steps(CALL_STEPS)
                return replaced(obj, args, {})
            new_args = check(obj, args, {})
            if new_args is not None:
                args = new_args
            result = getattr(obj, name)(*args)
            if type(result) is int:
                _check_int(result)
            elif type(result) in _SIZED:
                check_size(result)
            if kind in _MUTABLE:
                check_size(obj)
            return result
    value = attribute(obj, name, specials)
    if value is MISSING or value is None:
        # (airspeed: a None attribute is looked up as a Java shim, like a missing one)
        return MISSING
    return call(value, args, None, specials)


def has_method(obj: Any, name: str, specials: bool = False) -> bool:
    """Whether `call_method(obj, name, ...)` finds something to call, without calling it.
    A name the type has but the allowlist refuses counts as found: the call refuses it."""
    kind = type(obj)
    methods = _METHODS.get(kind)
    if methods is not None and (
        methods.get(name) is not None or (specials and _SPECIALS[kind].get(name) is not None)
    ):
        return True
    try:
        value = attribute(obj, name, specials)
    except TemplateSecurityError:
        return True
    return not (value is MISSING or value is None)


def _name_of(func: Any) -> str:
    return func.__func__.__name__ if type(func) is MethodType else func.__name__


_SIZED = frozenset({str, list, dict, tuple, bytes, Markup})
# Every type a Velocity value can have: JSON's, null, and what their allowed methods return.
# None of them has instance attributes: what `dir` of the type lists is all a value has.
VALUE_TYPES = (
    str,
    list,
    dict,
    int,
    float,
    bool,
    type(None),
    tuple,
    bytes,
    range,
    type(NotImplemented),
    *_DICT_VIEWS,
)
_SLOTLESS = frozenset(VALUE_TYPES)
_MUTABLE = frozenset({list, dict})


# -- arithmetic --------------------------------------------------------------------------------


def _int_bits_limit() -> int:
    budget = _budget.get()
    if budget is None:
        _outside()
    return budget.max_int_bits


def _big_int(bits: int, limit: int) -> None:
    if bits > limit:
        raise TemplateLimitError(f"integer larger than {limit} bits")
    if bits > 2048:
        charge_steps(big_int_steps(bits))


def big_int_steps(bits: int) -> int:
    """Arithmetic on integers of `bits` bits: division and conversion to text are quadratic
    in the number of 30-bit digits (a 16,384-bit division takes about half a millisecond)."""
    digits = bits // 30 + 1
    return (digits * digits) >> 8


def check_binop(op: str, left: Any, right: Any) -> None:
    """Refuse, before it is computed, an operation whose result would pass the budget."""
    if op == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple, bytes)) and isinstance(times, int):
                size = len(seq) * max(times, 0)
                if isinstance(seq, (list, tuple)):
                    charge_steps(size >> 4)
                    reserve(size, size * ITEM_BYTES)
                else:
                    reserve(size)
                return
        if isinstance(left, int) and isinstance(right, int):
            _big_int(left.bit_length() + right.bit_length(), _int_bits_limit())
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            limit = _int_bits_limit()
            if right > limit or math.log2(abs(left)) * right > limit:
                raise TemplateLimitError(f"integer larger than {limit} bits")
            _big_int(int(math.log2(abs(left)) * right) + 1, limit)
    elif op == "<<":
        if isinstance(left, int) and isinstance(right, int) and left:
            limit = _int_bits_limit()
            if right > limit:
                raise TemplateLimitError(f"integer larger than {limit} bits")
            _big_int(left.bit_length() + max(right, 0), limit)
    elif op == "+":
        if isinstance(left, (str, list, tuple, bytes)) and isinstance(
            right, (str, list, tuple, bytes)
        ):
            size = len(left) + len(right)
            reserve(size, size * ITEM_BYTES if isinstance(left, (list, tuple)) else size)
        elif isinstance(left, int) and isinstance(right, int):
            bits = max(left.bit_length(), right.bit_length())
            if bits > 2048:
                charge_steps(bits >> 8)
            if bits >= _int_bits_limit():
                raise TemplateLimitError(f"integer larger than {_int_bits_limit()} bits")


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "**": operator.pow,
    "%": operator.mod,
}


def _check_int(value: int) -> None:
    """An integer made without arithmetic (from text, bytes or rounding) is bounded too."""
    limit = _int_bits_limit()
    if value.bit_length() > limit:
        raise TemplateLimitError(f"integer larger than {limit} bits")


def binop(op: str, left: Any, right: Any) -> Any:
    """A template's arithmetic operator, bounded."""
    if op == "%" and isinstance(left, str):
        return percent_format(left, right)
    if op == "%" and isinstance(left, (bytes, bytearray)):
        return percent_format_bytes(bytes(left), right)
    check_binop(op, left, right)
    if op in ("//", "%") and isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length()
        if bits > 2048:
            charge_steps(big_int_steps(bits))
    result = _OPERATORS[op](left, right)
    if type(result) in _SIZED:
        check_size(result)
    return result


def compare_cost(left: Any, right: Any) -> None:
    """Comparing (or searching) big values scans them: counted like a scan."""
    size = 0
    for value in (left, right):
        kind = type(value)
        if kind is str or kind is bytes:
            size = max(size, len(value) >> 6)
        elif kind in (list, tuple, dict):
            size = max(size, len(value))
    if size > 64:
        charge_steps(size >> 4)


# -- formatting ---------------------------------------------------------------------------------

_SPEC_NUMBER = re.compile(r"\d+")


def check_format_spec(spec: str) -> None:
    """A format spec's width and precision (nested fields already substituted) may not pass the
    per-value limit: checked before the text is built."""
    limit = _limit()
    for number in _SPEC_NUMBER.findall(spec):
        if len(number) > 12 or int(number) > limit:
            raise TemplateLimitError("format width larger than the output limit")


_PERCENT = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?(?P<flags>[-#0 +]*)(?P<width>\*|\d+)?"
    r"(?:\.(?P<precision>\*|\d+))?[hlL]?(?P<kind>.?)",
    re.S,
)


def _number(text: str | None, values: list, limit: int) -> int:
    if text is None:
        return 0
    if text == "*":
        value = values.pop(0) if values else 0
        return value if isinstance(value, int) else 0
    if len(text) > 12:
        raise TemplateLimitError("format width larger than the output limit")
    return int(text)


def percent_format(template: str, values: Any) -> str:
    """`template % values`, refused before it is built when the result would pass the
    per-value limit (widths, precisions, and the text of every `%s`/`%r` value measured)."""
    size, opaque = _percent_size(template, values, key_of=str)
    reserve(size)
    result = template % (without_addresses(values) if opaque else values)
    return check_size(result)


def percent_format_bytes(template: bytes, values: Any) -> bytes:
    """`template % values` on bytes (from `.encode()`), measured as on text first: `%s` and
    `%b` take bytes, whose length is their size; a mapping's keys are bytes."""
    size, opaque = _percent_size(
        template.decode("latin-1"),
        values,
        key_of=lambda key: key.encode("latin-1"),
        measure_text=lambda value, limit: (
            len(value) if isinstance(value, (bytes, bytearray)) else _text_length(value, limit)
        ),
    )
    reserve(size)
    result = template % (without_addresses(values) if opaque else values)
    return check_size(result)


def _percent_size(
    template: str,
    values: Any,
    key_of: Callable[[str], Any],
    measure_text: Callable[[Any, int], int] | None = None,
) -> tuple[int, bool]:
    """The length of `template % values` (refused past the limit), and whether a value it
    prints would show an address."""
    limit = _limit()
    opaque = False
    measure_text = measure_text or _text_length
    charge_steps(CALL_STEPS + (len(template) >> 10))
    positional = list(values) if type(values) is tuple else [values]
    mapping = values if isinstance(values, dict) else None
    total = len(template)
    for match in _PERCENT.finditer(template):
        kind = match.group("kind")
        if kind == "%":
            continue
        charge_steps(4)
        width = _number(match.group("width"), positional, limit)
        precision = _number(match.group("precision"), positional, limit)
        key = match.group("key")
        if key is not None and mapping is not None:
            value = mapping.get(key_of(key))
        else:
            value = positional.pop(0) if positional else None
        if kind in ("s", "r", "a", "b"):
            measure = _Measure(limit)
            if kind in ("s", "b") and (
                isinstance(value, (str, bytes, bytearray)) or type(value) in SCALARS
            ):
                measure.add(measure_text(value, limit))
            elif kind in ("s", "b"):
                found = _measure_str(value, limit)
                measure.add(found.total)
                opaque = opaque or found.opaque
            else:
                measure.repr_size(value, 0)
                if kind == "a":
                    measure.add(measure.total * 9)  # \U0001xxxx escapes
            opaque = opaque or measure.opaque
            size = measure.total
            if match.group("precision") is not None:
                size = min(size, precision)
        elif isinstance(value, int) and not isinstance(value, bool):
            size = value.bit_length() // 3 + 2 + precision
        else:
            size = 330 + precision  # a float: at most 309 digits before the point
        total += max(abs(width), size)
        if total > limit:
            raise TemplateLimitError(f"value larger than the output limit ({limit})")
    return total, opaque


def _text_length(value: Any, limit: int) -> int:
    from .text import text_size

    return text_size(value, limit)


class BoundedFormatter(string.Formatter):
    """`str.format` as Python runs it (field numbering, nested specs, conversions, errors),
    with every field's attribute/item access through the gate and every width, precision and
    converted value measured before the text is built.

    `get_attribute(obj, name)` and `get_item(obj, key)` give the environment's semantics:
    Python's for converted legacy templates (a missing attribute raises), Jinja's for tenant
    templates (through the sandboxed environment).
    """

    def __init__(
        self,
        get_attribute: Callable[[Any, str], Any],
        get_item: Callable[[Any, Any], Any],
        escape_fields: bool = False,
    ) -> None:
        self.get_attribute = get_attribute
        self.get_item = get_item
        self.escape_fields = escape_fields

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:  # type: ignore[override]
        charge_steps(CALL_STEPS + (len(format_string) >> 10))
        return self._build(format_string, args, kwargs, 2, [0], [0])

    def _build(
        self, format_string: str, args: Any, kwargs: Any, depth: int, auto: list, total: list
    ) -> str:
        # CPython's build_string: field numbering (auto[0]: next index, or -1 once manual)
        # is decided by the field's first part (`{[0]}` is automatic, `{0[0]}` manual), and a
        # format spec is expanded only when it holds a field
        if depth <= 0:
            raise ValueError("Max string recursion exceeded")
        limit = _limit()
        result = []
        for literal_text, field_name, format_spec, conversion in self.parse(format_string):
            if literal_text:
                result.append(literal_text)
                total[0] += len(literal_text)
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
                obj = self.get_attribute(obj, key) if is_attr else self.get_item(obj, key)
            charge_steps(4)
            obj = self._convert(obj, conversion, limit)
            if format_spec and "{" in format_spec:
                format_spec = self._build(format_spec, args, kwargs, depth - 1, auto, [0])
            text = self._field(obj, format_spec, limit)
            total[0] += len(text)
            if total[0] > limit:
                raise TemplateLimitError(f"value larger than the output limit ({limit})")
            result.append(text)
        return "".join(result)

    def _convert(self, obj: Any, conversion: str | None, limit: int) -> Any:
        if conversion is None:
            return obj
        if conversion == "s":
            return to_text(obj)
        if conversion in ("r", "a"):
            measure = _Measure(limit)
            measure.repr_size(obj, 0)
            if conversion == "a":
                measure.add(measure.total * 9)
            reserve(measure.total)
            obj = without_addresses(obj, measure)
            return repr(obj) if conversion == "r" else ascii(obj)
        raise ValueError(f"Unknown conversion specifier {conversion!s}")

    def _field(self, value: Any, format_spec: str, limit: int) -> str:
        if format_spec:
            check_format_spec(format_spec)
            if isinstance(value, str):
                reserve(len(value))
            text = format(value, format_spec)
            reserve(len(text))
        else:
            text = to_text(value) if not isinstance(value, str) else value
            text = str(text) if type(text) is not str and not self.escape_fields else text
        if self.escape_fields:
            text = escape(text)
        return text


def _python_attribute(obj: Any, name: str) -> Any:
    value = attribute(obj, name, specials=False)
    if value is MISSING:
        raise AttributeError(f"'{type(obj).__name__}' object has no attribute '{name}'")
    return value


def _python_item(obj: Any, key: Any) -> Any:
    return item(obj, key)


PYTHON_FORMATTER = BoundedFormatter(_python_attribute, _python_item)


def _str_format(owner: Any, args: tuple, kwargs: dict) -> str:
    if isinstance(owner, Markup):
        formatter = BoundedFormatter(_python_attribute, _python_item, escape_fields=True)
        return Markup(formatter.vformat(owner, args, kwargs))
    return PYTHON_FORMATTER.vformat(owner, args, kwargs)


def _str_format_map(owner: Any, args: tuple, kwargs: dict) -> str:
    if len(args) != 1 or kwargs:
        raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
    return _str_format(owner, (), args[0])


def _str_mod(owner: Any, args: tuple, kwargs: dict) -> Any:
    if len(args) != 1:
        raise TypeError(f"expected 1 argument, got {len(args)}")
    if isinstance(owner, Markup):
        reserve(len(owner))
        percent_format(str(owner), args[0])  # measured; Markup's own % escapes the values
        return owner % args[0]
    return percent_format(owner, args[0])


for _kind in (str, Markup):
    _METHODS[_kind]["format"] = _step
    _METHODS[_kind]["format_map"] = _step
    _REPLACED[(_kind, "format")] = _str_format
    _REPLACED[(_kind, "format_map")] = _str_format_map
    _REPLACED[(_kind, "__mod__")] = _str_mod
_SPECIALS[str]["__mod__"] = _step
_METHODS[str]["maketrans"] = _maketrans
