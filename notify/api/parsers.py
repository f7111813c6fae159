"""The API's one JSON parser: whatever it returns can be stored, rendered, hashed and answered.

JSON text can spell values that Python decodes but nothing after it can handle: a lone surrogate
(`"\\ud800"`) cannot be encoded to UTF-8, so it breaks hashing, storage and the answer itself;
`1e400` decodes to infinity, which neither PostgreSQL nor SQLite JSON can hold; nesting a
thousand levels deep exhausts the stack of whatever walks the data next. All of these are
refused here, for every field of every endpoint at once, with a 400 in the API's format."""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Template data is a handful of levels deep; this leaves ample room and a bounded stack.
MAX_DEPTH = 32
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {literal[:40]}")
    return value


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 8259 leaves an object with a name twice to each parser: one would read the first
    # value and another the last, so such a body is refused rather than guessed at.
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise ValueError(f"the name {name[:40]!r} appears twice in one object")
            seen.add(name)
    return data


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _path(parts: list[str | int]) -> str:
    shown = ""
    for part in parts:
        if isinstance(part, int):
            shown += f"[{part}]"
        else:
            # A key may hold the very character being reported: show it escaped.
            key = part.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
            shown += f".{key}" if shown else key
    return shown or "(the body)"


def check_parsed(data: Any) -> None:
    """Raises ParseError for a lone surrogate in any string or key, or nesting deeper than
    MAX_DEPTH. Walks without recursion: the depth is what is being checked."""
    pending: list[tuple[Any, list[str | int]]] = [(data, [])]
    while pending:
        value, path = pending.pop()
        if isinstance(value, dict | list) and len(path) >= MAX_DEPTH:
            raise ParseError(f"The JSON body is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(value, dict):
            for key, item in value.items():
                pending.append((key, path))  # a key is checked like a string at its parent
                pending.append((item, [*path, key]))
        elif isinstance(value, list):
            pending.extend((item, [*path, index]) for index, item in enumerate(value))
        elif isinstance(value, str) and (match := _SURROGATE.search(value)):
            raise ParseError(
                f"The JSON body is not valid Unicode: {_path(path)} contains a lone surrogate "
                f"(\\u{ord(match.group()):04x}), which no text can be encoded with."
            )


class StrictJSONParser(JSONParser):
    """RFC 8259 JSON: UTF-8 whatever the Content-Type's charset says (the RFC defines no
    charset parameter), finite numbers only, no NaN or Infinity, each name once per object,
    valid Unicode, bounded depth."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:  # noqa: ANN001
        try:
            data = json.load(
                codecs.getreader("utf-8")(stream),
                parse_float=_finite_float,
                parse_constant=_refuse_constant,
                object_pairs_hook=_unique_names,
            )
        except ValueError as exc:  # UnicodeDecodeError (not UTF-8) is a ValueError too
            raise ParseError(f"JSON parse error - {exc}") from None
        check_parsed(data)
        return data
