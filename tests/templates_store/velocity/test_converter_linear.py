"""The converter's work grows linearly with the source (counted, never timed), its size limit,
and its bound on #foreach nesting."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from templates_store.velocity import convert
from templates_store.velocity.bench_convert import HOSTILE_SOURCES
from templates_store.velocity.converter import (
    MAX_FOREACH_NESTING,
    MAX_SOURCE_CHARS,
    _convert,
)
from templates_store.velocity.parser import Comment, Parser, Text, line_col

# work may grow a little faster than the source (constant parts, rounding of repeated units);
# a super-linear step grows it several times faster at these sizes
SLACK = 1.25


def work(source: str) -> int:
    """Function calls (Python and built-in) made by converting `source`: the converter's work,
    the same on every run."""
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        _convert(source, None, frozenset())
    finally:
        sys.setprofile(None)
    return calls


def nest(opening: str, middle: str, closing: str, depth: int) -> str:
    return opening * depth + middle + closing * depth


@pytest.mark.parametrize("kind", sorted(HOSTILE_SOURCES))
def test_hostile_source__longer__work_per_added_character_does_not_grow(kind: str) -> None:
    # Given a hostile pattern of about 3,000, 6,000 and 12,000 characters (bench_convert's)
    sources = [HOSTILE_SOURCES[kind](size) for size in (3_000, 6_000, 12_000)]
    # When each is converted
    works = [work(source) for source in sources]
    # Then the last 6,000 characters cost no more per character than the 3,000 before them
    # (constant parts cancel out; a quadratic step would cost twice as much per character)
    lengths = [len(source) for source in sources]
    per_char = (works[1] - works[0]) / (lengths[1] - lengths[0])
    assert works[2] - works[1] <= SLACK * per_char * (lengths[2] - lengths[1]) + 50
    # And the Jinja text grows no faster than the source
    jinja = [len(_convert(source, None, frozenset())[0].source or "") for source in sources]
    assert (
        jinja[2] - jinja[1]
        <= SLACK
        * max(jinja[1] - jinja[0], 1)
        * ((lengths[2] - lengths[1]) / (lengths[1] - lengths[0]))
        + 50
    )


DEPTH_PATTERNS: dict[str, Callable[[int], str]] = {
    # each was exponential or quadratic in its depth before (re-parsed ranges, re-walked
    # bodies, effects() re-walking operands, a search from every macro)
    "calls in lists": lambda d: "#set($x = " + nest("[$a(", "1", ")]", d) + ")",
    "operator chain": lambda d: "#set($x = $a" + " + $a" * d + ")",
    "nested macros": lambda d: nest("#macro(m $a)", "$a#m(1)", "#end", d),
    "nested defines": lambda d: nest("#define($d)", "$d", "#end", d),
    "nested if with references": lambda d: nest("#if($a)", "$b.c " * 50, "#end", d),
    "macro chain": lambda d: "".join(f"#macro(m{i})#m{i + 1}()#end" for i in range(d)),
    "nested interpolated strings": lambda d: nest('#set($s = "$a', "#if($b)x#end", '")', 1) * d,
}


@pytest.mark.parametrize("pattern", sorted(DEPTH_PATTERNS))
def test_nesting_four_times_deeper__work_grows_like_the_source(pattern: str) -> None:
    # Given a structure nested (or chained) 12 and 48 levels deep
    shallow, deep = DEPTH_PATTERNS[pattern](12), DEPTH_PATTERNS[pattern](48)
    # When each is converted
    shallow_work, deep_work = work(shallow), work(deep)
    # Then the work grows like the source, not like the depth's square or its power of two
    assert deep_work <= SLACK * (len(deep) / len(shallow)) * shallow_work


class _CountingText(str):
    """A text that counts the characters its `find` searches (the parser's only scans outside
    its regular expressions, which match at one position each)."""

    searched = 0

    def find(self, sub: Any, start: Any = None, end: Any = None) -> int:  # type: ignore[override]
        found = str.find(self, sub, start, end)
        self.searched += (found if found >= 0 else len(self)) - (start or 0)
        return found


def test_unterminated_block_comments__parsed__text_searched_once() -> None:
    # Given 4,000 block comments that are never closed
    text = _CountingText("#* x " * 4_000)
    # When parsed
    nodes = Parser(text).template()
    # Then they are text (as in airspeed), found by searching the text for `*#` once, not once
    # for each `#*`
    assert not any(isinstance(node, Comment) for node in nodes)
    assert "".join(node.text for node in nodes if isinstance(node, Text)) == text
    assert text.searched <= len(text)


def test_issues_on_many_lines__converted__positions_as_counted_from_the_start() -> None:
    # Given a warning on each of 2,000 lines, at varying columns
    source = "".join(" " * (i % 7) + "$s.toUpperCase()\n" for i in range(2_000))
    # When converted
    conversion = _convert(source, "sms", frozenset())[0]
    # Then each issue has the line and column parser.line_col counts from the start
    starts = [i for i in range(len(source)) if source.startswith("$s", i)]
    assert [(i.line, i.column) for i in conversion.issues] == [
        line_col(source, start) for start in starts
    ]


class _EveryAlternative(Parser):
    """The parser trying every alternative in airspeed's order (no dispatch tables)."""

    def block_alternatives(self, pos: int) -> tuple[Any, ...]:
        from templates_store.velocity.parser import _BLOCK

        return _BLOCK

    def value_alternatives(self, pos: int) -> tuple[Any, ...]:
        from templates_store.velocity.parser import _VALUES

        return _VALUES


NEXT_CHARACTERS = [chr(c) for c in range(128)] + ["é", "ſ", "K", "İ", "ı", "\u00a0", "\u2028"]
CONTINUATIONS = ["", "f(1)", "nd", "lse", "a.b", "{end}", "*x*#", "#x", " in [1..2])y#end"]


@pytest.mark.parametrize("first", ["#", "$", "#set($x = ", "#if(", "$a.b("])
def test_dispatch_tables__every_next_character__same_parse_as_trying_every_alternative(
    first: str,
) -> None:
    # Given texts with every ASCII character (and letters re.I folds) after `#`, `$` and
    # where a value starts
    for char in NEXT_CHARACTERS:
        for continuation in CONTINUATIONS:
            text = first + char + continuation + ")"
            # When parsed with the dispatch tables and by trying every alternative
            # Then both parse the same way (or fail the same way)
            assert _parse_outcome(Parser, text) == _parse_outcome(_EveryAlternative, text), text


def _parse_outcome(parser_class: type[Parser], text: str) -> str:
    try:
        return repr(parser_class(text).template())
    except Exception as exc:  # noqa: BLE001 - the syntax error is part of the outcome
        return f"{type(exc).__name__}: {exc}"


def test_source_over_the_limit__convert__needs_review_without_parsing() -> None:
    # Given a source one character over the limit
    source = "x" * (MAX_SOURCE_CHARS + 1)
    # When converted
    conversion = convert(source)
    # Then it is not converted, with a clear reason
    assert (conversion.source, conversion.status) == (None, "needs_review")
    assert [i.construct for i in conversion.issues] == ["size_limit"]
    assert f"{MAX_SOURCE_CHARS:,}" in conversion.issues[0].message


def test_source_at_the_limit__convert__converted() -> None:
    # Given a source of exactly the limit
    source = "Dear $name, " + "x" * (MAX_SOURCE_CHARS - 12)
    # When converted
    conversion = convert(source, channel="sms")
    # Then it converts
    assert len(source) == MAX_SOURCE_CHARS
    assert conversion.status == "exact"


def test_foreach_nested_to_the_limit__convert__compiles_without_nesting_issue() -> None:
    # Given #foreach nested as deep as Python compiles
    source = nest("#foreach($i in $l)", "$i", "#end", MAX_FOREACH_NESTING)
    # When converted (and compiled by convert's check)
    conversion = convert(source, channel="sms")
    # Then it is not flagged
    assert conversion.status != "needs_review"


def test_foreach_nested_past_the_limit__convert__needs_review_naming_the_nesting() -> None:
    # Given #foreach nested one level deeper than Python compiles, twice
    one = nest("#foreach($i in $l)", "$i", "#end", MAX_FOREACH_NESTING + 1)
    # When converted
    conversion = convert(one + "\n" + one, channel="sms")
    # Then each nest is reported once, at its too-deep #foreach
    assert conversion.status == "needs_review"
    nesting = [i for i in conversion.issues if i.construct == "nesting"]
    column = len("#foreach($i in $l)") * MAX_FOREACH_NESTING + 1
    assert [(i.line, i.column) for i in nesting] == [(1, column), (2, column)]
    assert "20 nested loops" in nesting[0].message
