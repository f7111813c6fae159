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
from .errors import TemplateLimitError, TemplateSecurityError

__all__ = ["match", "sub", "MatchResult"]

# compiled patterns, shared by renders (bounded: emptied when full)
_PATTERNS: dict[tuple[type, Any], Any] = {}
_PATTERN_CACHE_SIZE = 64
MAX_PATTERN_CHARS = 1_000
# what a pattern may expand to when compiled (counted repeats multiply what they repeat:
# `(?:(?:a{30}){30}){30}` is 27,000 nodes, and compiling it takes seconds and megabytes)
MAX_PATTERN_SIZE = 2_000
_REPEAT = regex.compile(r"\{(\d*)(?:,(\d*))?\}")


def pattern_size(pattern: str) -> int:
    """An upper estimate of the compiled size of `pattern`: each atom counts 1, a counted
    repeat multiplies what it follows (an atom, a class or a group)."""
    stack = [0]
    last = 0  # size of the item a quantifier would repeat
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            last = 1
            stack[-1] += 1
            continue
        if ch == "[":
            # a character class is one atom; `]` first in the class is literal
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i = j + 1
            last = 1
            stack[-1] += 1
            continue
        if ch == "(":
            stack.append(0)
            i += 1
            last = 0
            continue
        if ch == ")":
            inner = stack.pop() if len(stack) > 1 else 0
            last = max(inner, 1)
            stack[-1] += last
            i += 1
            continue
        if ch == "{":
            repeat = _REPEAT.match(pattern, i)
            if repeat is not None and (repeat.group(1) or repeat.group(2)):
                counts = [int(c) for c in repeat.groups() if c]
                times = max(counts) if counts else 1
                stack[-1] += last * max(times - 1, 0)
                last = last * max(times, 1)
                i = repeat.end()
                if stack[-1] > MAX_PATTERN_SIZE or times > MAX_PATTERN_SIZE:
                    return MAX_PATTERN_SIZE + 1
                continue
        last = 1
        stack[-1] += 1
        i += 1
    return sum(stack)


def _compile(pattern: Any) -> Any:
    key = (type(pattern), pattern)
    compiled = _PATTERNS.get(key)
    if compiled is None:
        if not isinstance(pattern, str):
            raise TemplateSecurityError("a regular expression must be a text")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise TemplateLimitError(
                f"regular expression longer than {MAX_PATTERN_CHARS} characters"
            )
        size = pattern_size(pattern)
        if size > MAX_PATTERN_SIZE:
            raise TemplateLimitError("regular expression too large once compiled")
        charge_steps(8 * len(pattern) + size)
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
    if not isinstance(replacement, str):
        # (re.sub would call a callable with raw match objects, outside the sandbox)
        raise TemplateSecurityError("replaceAll() takes a text replacement")
    if not isinstance(text, str):
        raise TypeError("expected string or bytes-like object")
    charge_steps(1 + (len(text) >> 10))
    # a replacement text can repeat the match (`\g<0>` as often as it has backslashes)
    references = replacement.count("\\")
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
