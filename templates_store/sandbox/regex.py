"""Regular expressions from templates or data, on an engine with a time bound.

Python's `re` has no timeout: a backtracking pattern (`(a|aa)+$` on 40 'a's and a '!') runs
for minutes inside one C call. The `regex` package is compatible with `re` (its version 0
behaviour) and takes a `timeout`: every operation gets what remains of the render's regex time
(at most `regex_timeout` seconds each), and running out is the budget's own error.
"""

from __future__ import annotations

import time
from typing import Any

import regex

from .budget import _budget, _outside, charge_steps, reserve
from .errors import TemplateLimitError

__all__ = ["match", "sub", "MatchResult"]

# compiled patterns, shared by renders (bounded: emptied when full)
_PATTERNS: dict[tuple[type, Any], Any] = {}
_PATTERN_CACHE_SIZE = 256
_MAX_PATTERN_CHARS = 10_000


def _compile(pattern: Any) -> Any:
    key = (type(pattern), pattern)
    compiled = _PATTERNS.get(key)
    if compiled is None:
        if isinstance(pattern, str) and len(pattern) > _MAX_PATTERN_CHARS:
            raise TemplateLimitError(
                f"regular expression longer than {_MAX_PATTERN_CHARS} characters"
            )
        compiled = regex.compile(pattern, regex.VERSION0)
        if len(_PATTERNS) >= _PATTERN_CACHE_SIZE:
            _PATTERNS.clear()
        _PATTERNS[key] = compiled
    return compiled


class _Clock:
    __slots__ = ("budget", "started")

    def __init__(self) -> None:
        budget = _budget.get()
        if budget is None:
            _outside()
        self.budget = budget
        self.started = 0.0

    def timeout(self) -> float:
        budget = self.budget
        left = budget.regex_total - budget.regex_seconds
        if left <= 0:
            raise TemplateLimitError("regular expressions took too long (time budget spent)")
        self.started = time.monotonic()
        return min(budget.regex_timeout, left)

    def stop(self) -> None:
        self.budget.regex_seconds += time.monotonic() - self.started


def _timed_out() -> TemplateLimitError:
    return TemplateLimitError("regular expression took too long (time budget exceeded)")


class MatchResult:
    """A match as airspeed's `matches()` gave it (Python's `re.Match`): the same methods and
    the same printed form, from a match found under the time bound."""

    __slots__ = ("_match",)

    def __init__(self, found: Any) -> None:
        self._match = found

    def __repr__(self) -> str:
        found = self._match
        return f"<re.Match object; span={found.span()!r}, match={found.group(0)!r}>"

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, group: Any) -> Any:
        return self._match[group]

    def group(self, *groups: Any) -> Any:
        return self._match.group(*groups)

    def groups(self, default: Any = None) -> Any:
        return self._match.groups(default)

    def groupdict(self, default: Any = None) -> Any:
        return self._match.groupdict(default)

    def start(self, group: Any = 0) -> int:
        return self._match.start(group)

    def end(self, group: Any = 0) -> int:
        return self._match.end(group)

    def span(self, group: Any = 0) -> tuple[int, int]:
        return self._match.span(group)

    @property
    def string(self) -> str:
        return self._match.string

    @property
    def pos(self) -> int:
        return self._match.pos

    @property
    def endpos(self) -> int:
        return self._match.endpos

    @property
    def lastindex(self) -> int | None:
        return self._match.lastindex

    @property
    def lastgroup(self) -> str | None:
        return self._match.lastgroup


def match(pattern: Any, text: Any) -> MatchResult | None:
    """`re.match(pattern, text)` under the time bound."""
    compiled = _compile(pattern)
    charge_steps(1 + (len(text) >> 10) if isinstance(text, str) else 1)
    clock = _Clock()
    try:
        found = compiled.match(text, timeout=clock.timeout())
    except TimeoutError:
        raise _timed_out() from None
    finally:
        clock.stop()
    return MatchResult(found) if found is not None else None


def sub(pattern: Any, replacement: Any, text: Any) -> Any:
    """`re.sub(pattern, replacement, text)` under the time bound; the result's size is known
    (and refused past the limit) before it is built."""
    compiled = _compile(pattern)
    if not isinstance(text, (str, bytes)) or not isinstance(replacement, (str, bytes)):
        return compiled.sub(replacement, text)  # the same TypeError re.sub gives
    charge_steps(1 + (len(text) >> 10))
    # a replacement text can repeat the match (`\g<0>` as often as it has backslashes)
    references = replacement.count("\\" if isinstance(replacement, str) else b"\\")
    clock = _Clock()
    try:
        size = len(text)
        for found in compiled.finditer(text, timeout=clock.timeout()):
            span = found.end() - found.start()
            size += len(replacement) + references * span - span
    except TimeoutError:
        raise _timed_out() from None
    finally:
        clock.stop()
    reserve(max(size, 0))
    try:
        return compiled.sub(replacement, text, timeout=clock.timeout())
    except TimeoutError:
        raise _timed_out() from None
    finally:
        clock.stop()
