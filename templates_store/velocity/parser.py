"""Velocity parser producing an AST, following airspeed 0.7.1's grammar exactly.

The legacy gateway rendered with airspeed, whose grammar is a set of regular expressions
tried in a fixed order at each position.  Its quirks (what counts as text, what swallows
a newline, which malformed directive degrades to text and which one is a syntax error)
all follow from those expressions and that order, so this parser keeps the same
expressions and the same order rather than a cleaner grammar: any deviation would
change what a converted template renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "VelocitySyntaxError",
    "parse",
    "Node",
    "Text",
    "Reference",
    "Comment",
    "If",
    "Set",
    "Foreach",
    "Include",
    "MacroDef",
    "DefineDef",
    "Stop",
    "Evaluate",
    "MacroCall",
    "Lit",
    "RefValue",
    "InterpStr",
    "ListLit",
    "RangeLit",
    "DictLit",
    "Unary",
    "BinOp",
    "NameStep",
    "IndexStep",
    "RefExpr",
    "line_col",
]


class NoMatch(Exception):
    """The element does not start here; the caller tries its next alternative."""


class VelocitySyntaxError(Exception):
    """airspeed raises TemplateSyntaxError here: the legacy template never rendered."""

    def __init__(self, text: str, pos: int, expected: str) -> None:
        self.pos = pos
        self.line, self.column = line_col(text, pos)
        got = text[pos : pos + 40]
        super().__init__(
            f"line {self.line}, column {self.column}: expected {expected}, got {got!r}"
        )


def line_col(text: str, pos: int) -> tuple[int, int]:
    before = text[:pos]
    return before.count("\n") + 1, pos - (before.rfind("\n") + 1) + 1


# ---------------------------------------------------------------------------
# AST
# ---------------------------------------------------------------------------


@dataclass
class Node:
    start: int
    end: int


@dataclass
class Text(Node):
    text: str


@dataclass
class NameStep:
    """`name`, `name(args)` or `name[index]`: one airspeed NameOrCall."""

    name: str
    params: list[Any] | None = None
    index: Any = None


@dataclass
class IndexStep:
    """A bare `[index]` after a call or an index (airspeed SubExpression): unguarded."""

    index: Any


@dataclass
class RefExpr:
    steps: list[Any]  # NameStep first, then NameStep / IndexStep


@dataclass
class Reference(Node):
    silent: bool
    braces: bool
    expr: RefExpr | None
    alternate: Any
    source: str


@dataclass
class Comment(Node):
    pass


@dataclass
class If(Node):
    branches: list[tuple[Any, list[Node]]]
    else_block: list[Node] | None


@dataclass
class Set(Node):
    terms: list[str]
    value: Any


@dataclass
class Foreach(Node):
    var: str
    iterable: Any
    block: list[Node]


@dataclass
class Include(Node):
    kind: str
    name: Any


@dataclass
class MacroDef(Node):
    name: str
    args: list[str]
    block: list[Node]


@dataclass
class DefineDef(Node):
    name: str
    args: list[str]
    block: list[Node]


@dataclass
class Stop(Node):
    pass


@dataclass
class Evaluate(Node):
    value: Any


@dataclass
class MacroCall(Node):
    name: str
    args: list[Any]


# Values ------------------------------------------------------------------


@dataclass
class Lit(Node):
    value: Any


@dataclass
class RefValue(Node):
    ref: Reference


@dataclass
class InterpStr(Node):
    raw: str
    block: list[Node]


@dataclass
class ListLit(Node):
    items: list[Any]


@dataclass
class RangeLit(Node):
    low: Any
    high: Any


@dataclass
class DictLit(Node):
    pairs: list[tuple[Any, Any]] = field(default_factory=list)


@dataclass
class Unary(Node):
    op: str
    value: Any


@dataclass
class BinOp(Node):
    op: str
    left: Any
    right: Any


# ---------------------------------------------------------------------------
# Regular expressions: copied from airspeed 0.7.1, do not "fix" them.
# ---------------------------------------------------------------------------

I, S, M = re.I, re.S, re.M  # noqa: E741 - same flags as airspeed
WHITESPACE_TO_END_OF_LINE = re.compile(r"[ \t\r]*\n", S)
TEXT_PLAIN = re.compile(
    r"((?:[^\\\$#]+|\\[\$#])+|\$[^!\{a-z0-9_]|\$$|#$|#[^\{\}a-zA-Z0-9#\*]+|\\.)", S | I
)
TEXT_ESCAPED = re.compile(r"\\([\$#]\S+)")
FALLTHROUGH = re.compile(r"(\#(?!end|else|elseif|\{(?:end|else|elseif)\}))", S)
INTEGER = re.compile(r"(-?\d+)", S)
FLOAT = re.compile(r"(-?\d*\.\d+)", S)
BOOLEAN = re.compile(r"((?:true)|(?:false))", S | I)
NULL = re.compile(r"(null)", S | I)
STRING = re.compile(r"'((?:\\['nrbt\\\\\\$]|[^'\\])*)'", S)
STRING_ESC = re.compile(r"\\([nrbt'\\])")
ISTRING = re.compile(r'"((?:\\["nrbt\\\\\\$]|[^"\\])*)"', S)
ISTRING_ESC = re.compile(r'\\([nrbt"\\])')
RANGE_MIDDLE = re.compile(r"(\s*\.\.\s*)", S)
COMMA = re.compile(r"\s*,\s*", S)
OPEN_BRACKET = re.compile(r"\[\s*", S)
CLOSE_BRACKET = re.compile(r"\s*\]", S)
OPEN_BRACE = re.compile(r"{\s*", S)
CLOSE_BRACE_WS = re.compile(r"\s*}", S)
KEYVALSEP = re.compile(r"\s*:\s*", S)
NAME = re.compile(r"([_a-z][a-z0-9_]*)", S | I)
DOT = re.compile(r"\.", S)
OPEN_PAREN = re.compile(r"\(\s*", S)
OPEN_PAREN_WS = re.compile(r"\s*\(\s*", S)
CLOSE_PAREN = re.compile(r"\s*\)", S)
PIPE = re.compile(r"\|", S)
REF_START = re.compile(r"\$(!?)(\{?)", S)
CLOSING_BRACE = re.compile(r"\}", S)
COMMENT = re.compile("#(?:#.*?(?:\n|$)|\\*.*?\\*#(?:[ \t]*\n)?)", M | S)
BINARY_OP = re.compile(
    r"\s*(>=|<=|<|==|!=|>|%|\|\||&&|or|and|\+|\-|\*|\/|\%|gt|lt|ne|eq|ge|le|not)\s*", S
)
UNARY_OP = re.compile(r"\s*(!|(?:not))\s*", S)
END = re.compile(r"#(?:end|\{end\})", I | S)
ELSE = re.compile(r"#(?:else|\{else\})", S | I)
ELSEIF = re.compile(r"#elseif\b\s*", S | I)
IF = re.compile(r"#if\b\s*", S | I)
EVALUATE = re.compile(r"#evaluate\b")
ARG_NAME = re.compile(r"[,\n\s]+\$([a-z][a-z_0-9]*)", S | I)
MACRO = re.compile(r"#macro\b", S | I)
MACRO_NAME = re.compile(r"\s*([_a-z][a-z_0-9]*)\b", S | I)
MACRO_CALL = re.compile(r"#([a-z][a-z_0-9]*)\b", S | I)
SPACE_OR_COMMA = re.compile(r"\s*(?:,|\s)\s*", S)
DEFINE = re.compile(r"#define\b", S | I)
DEFINE_NAME = re.compile(r"\s*\$([a-z][a-z_0-9]*)\b", S | I)
INCLUDE = re.compile(r"#include\b", S | I)
PARSE = re.compile(r"#parse\b", S | I)
STOP = re.compile(r"#stop\b", S | I)
SET = re.compile(r"#set\s*\(", S | I)
SET_PLACE = re.compile(r"\s*\$([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)", S | I)
SET_EQUALS = re.compile(r"\s*\=\s*", S)
SET_END = re.compile(r"\s*\)(?:[ \t]*\r?\n)?", S)
FOREACH = re.compile(r"#foreach\b", S | I)
FOREACH_IN = re.compile(r"\s+in\s+", S)
LOOP_VAR = re.compile(r"\$([a-z_][a-z0-9_]*)", S | I)

RESERVED = (
    "if",
    "else",
    "elseif",
    "set",
    "macro",
    "foreach",
    "parse",
    "include",
    "stop",
    "end",
    "define",
)

OPERATORS = {
    ">": ">",
    "gt": ">",
    ">=": ">=",
    "ge": ">=",
    "<": "<",
    "lt": "<",
    "<=": "<=",
    "le": "<=",
    "==": "==",
    "eq": "==",
    "!=": "!=",
    "ne": "!=",
    "%": "%",
    "||": "or",
    "or": "or",
    "&&": "and",
    "and": "and",
    "+": "+",
    "-": "-",
    "*": "*",
    "/": "/",
}
PRECEDENCE = {
    ">": 7,
    "<": 7,
    "==": 8,
    ">=": 7,
    "<=": 7,
    "!=": 9,
    "||": 13,
    "&&": 12,
    "or": 13,
    "and": 12,
    "+": 5,
    "-": 5,
    "*": 4,
    "/": 4,
    "%": 4,
    "gt": 7,
    "lt": 7,
    "ne": 9,
    "eq": 8,
    "ge": 7,
    "le": 7,
}


def unescape_string(value: str) -> str:
    table = {"n": "\n", "r": "\r", "b": "\b", "t": "\t", '"': '"', "\\": "\\", "'": "'"}
    return STRING_ESC.sub(lambda m: table.get(m.group(1), "\\" + m.group(1)), value)


def unescape_istring(value: str) -> str:
    table = {"n": "\n", "r": "\r", "b": "\b", "t": "\t", '"': '"', "\\": "\\", "'": "'"}
    return ISTRING_ESC.sub(lambda m: table.get(m.group(1), "\\" + m.group(1)), value)


class Parser:
    """One recursive-descent pass over one text (a template or an interpolated string)."""

    def __init__(self, text: str) -> None:
        self.text = text
        # p_reference results by position: `[$a(...)` is parsed as a range first, then as a
        # list; without this each nesting level would parse its inner levels twice (2^depth)
        self._references: dict[int, tuple[Reference, int] | None] = {}
        # the last search for a block comment's closing `*#`: (searched from, found at or -1)
        self._comment_close: tuple[int, int] | None = None

    # -- helpers --------------------------------------------------------
    def match(self, pattern: re.Pattern[str], pos: int) -> re.Match[str]:
        m = pattern.match(self.text, pos)
        if m is None:
            raise NoMatch()
        return m

    def require(self, pattern: re.Pattern[str], pos: int, expected: str) -> re.Match[str]:
        m = pattern.match(self.text, pos)
        if m is None:
            raise VelocitySyntaxError(self.text, pos, expected)
        return m

    def first(self, funcs: tuple[Any, ...], pos: int) -> tuple[Any, int]:
        for func in funcs:
            try:
                return func(pos)
            except NoMatch:
                pass
        raise NoMatch()

    def first_of(self, funcs: tuple[Any, ...], pos: int) -> tuple[Any, int]:
        """first() for functions of the class (the dispatch tables below)."""
        for func in funcs:
            try:
                return func(self, pos)
            except NoMatch:
                pass
        raise NoMatch()

    def block_alternatives(self, pos: int) -> tuple[Any, ...]:
        """The block elements that can start at `pos`, in airspeed's order (see
        _block_alternatives); `pos` is within the text."""
        text = self.text
        char = text[pos]
        if char == "#":
            return _AT_HASH.get(text[pos + 1 : pos + 2], _AT_HASH_OTHER)
        if char == "$":
            return _AT_DOLLAR.get(text[pos + 1 : pos + 2], _AT_DOLLAR_OTHER)
        return _AT_TEXT

    def value_alternatives(self, pos: int) -> tuple[Any, ...]:
        """The values that can start at `pos`, in airspeed's order (see _value_alternatives)."""
        return _AT_VALUE.get(self.text[pos : pos + 1], _VALUES)

    def require_el(self, funcs: tuple[Any, ...], pos: int, expected: str) -> tuple[Any, int]:
        try:
            return self.first(funcs, pos)
        except NoMatch:
            raise VelocitySyntaxError(self.text, pos, expected) from None

    # -- template structure ---------------------------------------------
    def template(self) -> list[Node]:
        block, end = self.block(0)
        if end != len(self.text):
            raise VelocitySyntaxError(self.text, end, "block element")
        return block

    def block(self, pos: int) -> tuple[list[Node], int]:
        children: list[Node] = []
        size = len(self.text)
        while True:
            if pos >= size:
                # every element needs at least one character (TEXT_PLAIN's `\$$` and `#$`
                # too): nothing matches at the end
                return children, pos
            try:
                node, pos = self.first_of(self.block_alternatives(pos), pos)
            except NoMatch:
                return children, pos
            children.append(node)

    def p_text(self, pos: int) -> tuple[Node, int]:
        m = self.match(TEXT_PLAIN, pos)
        return Text(pos, m.end(), TEXT_ESCAPED.sub(lambda mm: mm.group(1), m.group(1))), m.end()

    def p_fallthrough(self, pos: int) -> tuple[Node, int]:
        m = self.match(FALLTHROUGH, pos)
        return Text(pos, m.end(), m.group(1)), m.end()

    def p_comment(self, pos: int) -> tuple[Node, int]:
        if self.text.startswith("#*", pos) and self._find_comment_close(pos + 2) < 0:
            # unterminated: the regex would scan to the end of the text at every `#*`
            raise NoMatch()
        m = self.match(COMMENT, pos)
        return Comment(pos, m.end()), m.end()

    def _find_comment_close(self, pos: int) -> int:
        """`text.find("*#", pos)`, reusing the last search: positions are searched in
        increasing order, so each `#*` does not scan the rest of the text again."""
        if self._comment_close is not None:
            searched_from, found = self._comment_close
            if searched_from <= pos and (found < 0 or pos <= found):
                return found
        found = self.text.find("*#", pos)
        self._comment_close = (pos, found)
        return found

    def p_reference(self, pos: int) -> tuple[Reference, int]:
        references = self._references
        if pos in references:
            known = references[pos]
            if known is None:
                raise NoMatch()
            return known
        m = REF_START.match(self.text, pos)
        if m is None:
            references[pos] = None
            raise NoMatch()
        silent, braces = bool(m.group(1)), bool(m.group(2))
        end = m.end()
        try:
            expr, end = self.variable_expression(end)
        except NoMatch:
            expr = None
        alternate = None
        if braces:
            try:
                pm = self.match(PIPE, end)
                alternate, end = self.require_el((self.value,), pm.end(), "expression")
            except NoMatch:
                pass
            end = self.require(CLOSING_BRACE, end, "}").end()
        # past REF_START nothing raises NoMatch: a result, or a syntax error that ends the parse
        result = Reference(pos, end, silent, braces, expr, alternate, self.text[pos:end]), end
        references[pos] = result
        return result

    def p_if(self, pos: int) -> tuple[Node, int]:
        m = self.match(IF, pos)
        cond, end = self.condition(m.end())
        block, end = self.block(end)
        branches = [(cond, block)]
        while True:
            try:
                em = self.match(ELSEIF, end)
            except NoMatch:
                break
            cond, end = self.require_el((self.condition,), em.end(), "condition")
            block, end = self.block(end)
            branches.append((cond, block))
        else_block = None
        try:
            em = self.match(ELSE, end)
            else_block, end = self.block(em.end())
        except NoMatch:
            pass
        end = self.require_el((self.p_end,), end, "#else, #elseif or #end")[1]
        return If(pos, end, branches, else_block), end

    def p_end(self, pos: int) -> tuple[None, int]:
        m = self.match(END, pos)
        end = m.end()
        ws = WHITESPACE_TO_END_OF_LINE.match(self.text, end)
        return None, ws.end() if ws else end

    def condition(self, pos: int) -> tuple[Any, int]:
        expr, end = self.parenthesized(pos)
        ws = WHITESPACE_TO_END_OF_LINE.match(self.text, end)
        return expr, ws.end() if ws else end

    def p_set(self, pos: int) -> tuple[Node, int]:
        m = self.match(SET, pos)
        pm = self.require(SET_PLACE, m.end(), "place")
        terms = pm.group(1).split(".")
        em = self.require(SET_EQUALS, pm.end(), "=")
        value, end = self.require_el((self.expression,), em.end(), "expression")
        end = self.require(SET_END, end, "closing paren").end()
        return Set(pos, end, terms, value), end

    def p_foreach(self, pos: int) -> tuple[Node, int]:
        m = self.match(FOREACH, pos)
        end = self.require(OPEN_PAREN_WS, m.end(), "(").end()
        vm = self.require(LOOP_VAR, end, "loop var name")
        end = self.require(FOREACH_IN, vm.end(), "in").end()
        iterable, end = self.value(end)  # NoMatch propagates: then it is text
        end = self.require(CLOSE_PAREN, end, ")").end()
        block, end = self.block(end)
        end = self.require_el((self.p_end,), end, "#end")[1]
        return Foreach(pos, end, vm.group(1), iterable, block), end

    def _include_like(self, pos: int, pattern: re.Pattern[str], kind: str) -> tuple[Node, int]:
        m = self.match(pattern, pos)
        end = self.require(OPEN_PAREN_WS, m.end(), "(").end()
        name, end = self.require_el(
            (self.string, self.istring, self.ref_value), end, "template name"
        )
        end = self.require(CLOSE_PAREN, end, ")").end()
        return Include(pos, end, kind, name), end

    def p_include(self, pos: int) -> tuple[Node, int]:
        return self._include_like(pos, INCLUDE, "include")

    def p_parse(self, pos: int) -> tuple[Node, int]:
        return self._include_like(pos, PARSE, "parse")

    def _function_def(
        self, pos: int, start: re.Pattern[str], name_re: re.Pattern[str], reserved: tuple[str, ...]
    ) -> tuple[str, list[str], list[Node], int]:
        m = self.match(start, pos)
        end = self.require(OPEN_PAREN_WS, m.end(), "(").end()
        nm = self.require(name_re, end, "function name")
        name = nm.group(1)
        if name.lower() in reserved:
            raise VelocitySyntaxError(self.text, nm.end(), "non-reserved name")
        end = nm.end()
        args = []
        while True:
            am = ARG_NAME.match(self.text, end)
            if not am:
                break
            args.append(am.group(1))
            end = am.end()
        end = self.require(CLOSE_PAREN, end, ") or arg name").end()
        ws = WHITESPACE_TO_END_OF_LINE.match(self.text, end)
        if ws:
            end = ws.end()
        block, end = self.block(end)
        end = self.require_el((self.p_end,), end, "block")[1]
        return name, args, block, end

    def p_macro(self, pos: int) -> tuple[Node, int]:
        name, args, block, end = self._function_def(pos, MACRO, MACRO_NAME, RESERVED)
        return MacroDef(pos, end, name, args, block), end

    def p_define(self, pos: int) -> tuple[Node, int]:
        name, args, block, end = self._function_def(pos, DEFINE, DEFINE_NAME, ())
        return DefineDef(pos, end, name, args, block), end

    def p_stop(self, pos: int) -> tuple[Node, int]:
        m = self.match(STOP, pos)
        return Stop(pos, m.end()), m.end()

    def p_evaluate(self, pos: int) -> tuple[Node, int]:
        m = self.match(EVALUATE, pos)
        end = self.require(OPEN_PAREN_WS, m.end(), "(").end()
        value, end = self.require_el((self.value,), end, "value")
        end = self.require(CLOSE_PAREN, end, ")").end()
        return Evaluate(pos, end, value), end

    def p_macro_call(self, pos: int) -> tuple[Node, int]:
        m = self.match(MACRO_CALL, pos)
        name = m.group(1).lower()
        if name in RESERVED:
            raise NoMatch()
        end = self.match(OPEN_PAREN_WS, m.end()).end()  # no paren: text (e.g. #333333)
        args = []
        while True:
            try:
                value, end = self.value(end)
            except NoMatch:
                break
            args.append(value)
            sm = SPACE_OR_COMMA.match(self.text, end)
            if not sm:
                break
            end = sm.end()
        end = self.require(CLOSE_PAREN, end, "argument value or )").end()
        return MacroCall(pos, end, name, args), end

    # -- references -------------------------------------------------------
    def variable_expression(self, pos: int) -> tuple[RefExpr, int]:
        step, end = self.name_or_call(pos)
        steps = [step]
        end = self.sub_expressions(end, steps)
        return RefExpr(steps), end

    def sub_expressions(self, pos: int, steps: list[Any]) -> int:
        """airspeed's SubExpression chain, flattened; returns the end of what matched.

        Past its first character (`(` or `[`) a parameter list or an index never falls back
        (it matches or is a syntax error), so the next character chooses the alternative:
        the same result as trying each in turn, without raising NoMatch at every step
        (raised inside an outer `except` block, that costs time in the nesting depth)."""
        text = self.text
        while True:
            char = text[pos : pos + 1]
            if char == ".":
                after = pos + 1
                m = NAME.match(text, after)
                if m is not None:
                    step, pos = self._name_step(m)
                    steps.append(step)
                    continue
                # airspeed has already consumed the dot when it falls back to an index
                if text.startswith("[", after):
                    index, pos = self.array_index(after)
                    steps.append(IndexStep(index))
                    continue
                return pos
            if char == "[":
                index, pos = self.array_index(pos)
                steps.append(IndexStep(index))
                continue
            return pos

    def name_or_call(self, pos: int) -> tuple[NameStep, int]:
        return self._name_step(self.match(NAME, pos))

    def _name_step(self, m: re.Match[str]) -> tuple[NameStep, int]:
        step = NameStep(m.group(1))
        end = m.end()
        char = self.text[end : end + 1]
        if char == "(":
            step.params, end = self.parameter_list(end)
        elif char == "[":
            step.index, end = self.array_index(end)
        return step, end

    def parameter_list(self, pos: int) -> tuple[list[Any], int]:
        m = self.match(OPEN_PAREN, pos)
        try:
            values, end = self.value_list(m.end())
        except NoMatch:
            values, end = [], m.end()
        end = self.require(CLOSE_PAREN, end, ")").end()
        return values, end

    def value_list(self, pos: int) -> tuple[list[Any], int]:
        value, end = self.value(pos)
        values = [value]
        while True:
            cm = COMMA.match(self.text, end)
            if not cm:
                return values, end
            value, end = self.require_el((self.value,), cm.end(), "value")
            values.append(value)

    def array_index(self, pos: int) -> tuple[Any, int]:
        m = self.match(OPEN_BRACKET, pos)
        index, end = self.require_el(
            (self.ref_value, self.integer, self.string, self.istring, self.parenthesized),
            m.end(),
            "integer index or object key",
        )
        end = self.require(CLOSE_BRACKET, end, "]").end()
        return index, end

    # -- values -----------------------------------------------------------
    def value(self, pos: int) -> tuple[Any, int]:
        return self.first_of(self.value_alternatives(pos), pos)

    def ref_value(self, pos: int) -> tuple[Any, int]:
        ref, end = self.p_reference(pos)
        return RefValue(pos, end, ref), end

    def integer(self, pos: int) -> tuple[Any, int]:
        m = self.match(INTEGER, pos)
        return Lit(pos, m.end(), int(m.group(1))), m.end()

    def floating(self, pos: int) -> tuple[Any, int]:
        m = self.match(FLOAT, pos)
        return Lit(pos, m.end(), float(m.group(1))), m.end()

    def boolean(self, pos: int) -> tuple[Any, int]:
        m = self.match(BOOLEAN, pos)
        return Lit(pos, m.end(), m.group(1).lower() == "true"), m.end()

    def null(self, pos: int) -> tuple[Any, int]:
        m = self.match(NULL, pos)
        return Lit(pos, m.end(), None), m.end()

    def string(self, pos: int) -> tuple[Any, int]:
        m = self.match(STRING, pos)
        return Lit(pos, m.end(), unescape_string(m.group(1))), m.end()

    def istring(self, pos: int) -> tuple[Any, int]:
        m = self.match(ISTRING, pos)
        raw = unescape_istring(m.group(1))
        # airspeed parses the body as a block and silently ignores what the block leaves
        block, _ = Parser(raw).block(0)
        return InterpStr(pos, m.end(), raw, block), m.end()

    def array(self, pos: int) -> tuple[Any, int]:
        m = self.match(OPEN_BRACKET, pos)
        end = m.end()
        node: Any
        try:
            node, end = self.range_(end)
        except NoMatch:
            node = None
        if node is None:
            # not in the `except` block: the list's own parse raises and catches NoMatch
            try:
                items, end = self.value_list(end)
            except NoMatch:
                items = []
            node = ListLit(pos, end, items)
        end = self.require(CLOSE_BRACKET, end, "]").end()
        node.start, node.end = pos, end
        return node, end

    def range_(self, pos: int) -> tuple[Any, int]:
        low, end = self.first((self.ref_value, self.integer), pos)
        end = self.match(RANGE_MIDDLE, end).end()
        high, end = self.first((self.ref_value, self.integer), end)
        return RangeLit(pos, end, low, high), end

    def dictionary(self, pos: int) -> tuple[Any, int]:
        m = self.match(OPEN_BRACE, pos)
        end = m.end()
        node = DictLit(pos, end, [])
        em = CLOSE_BRACE_WS.match(self.text, end)
        if em:
            node.end = em.end()
            return node, em.end()
        while True:
            key, end = self.value(end)
            end = self.require(KEYVALSEP, end, ":").end()
            val, end = self.value(end)
            node.pairs.append((key, val))
            cm = COMMA.match(self.text, end)
            if not cm:
                break
            end = cm.end()
        end = self.require(CLOSE_BRACE_WS, end, "}").end()
        node.end = end
        return node, end

    def parenthesized(self, pos: int) -> tuple[Any, int]:
        m = self.match(OPEN_PAREN, pos)
        expr, end = self.expression(m.end())
        end = self.require(CLOSE_PAREN, end, ")").end()
        return expr, end

    def unary(self, pos: int) -> tuple[Any, int]:
        m = self.match(UNARY_OP, pos)
        value, end = self.value(m.end())
        return Unary(pos, end, "not", value), end

    def expression(self, pos: int) -> tuple[Any, int]:
        first, end = self.value(pos)
        terms: list[Any] = [first]
        while True:
            om = BINARY_OP.match(self.text, end)
            if not om:
                break
            op = om.group(1)
            if op not in OPERATORS:
                # airspeed's operator table lacks `not`: a KeyError that fails the template
                raise VelocitySyntaxError(self.text, om.start(1), "binary operator")
            value, end = self.require_el((self.value,), om.end(), "value")
            terms.append(op)
            terms.append(value)
        return self._build(terms, pos, end), end

    @staticmethod
    def _build(terms: list[Any], start: int, end: int) -> Any:
        """Same operator-precedence pass as airspeed's Expression.calculate."""
        ops: list[str] = []
        values: list[Any] = [terms[0]]
        next_term, count = 1, len(terms)

        def reduce() -> None:
            right = values.pop()
            left = values.pop()
            op = ops.pop()
            values.append(BinOp(start, end, OPERATORS[op], left, right))

        while next_term < count:
            op = terms[next_term]
            if not ops or PRECEDENCE[op] < PRECEDENCE[ops[-1]]:
                ops.append(op)
                values.append(terms[next_term + 1])
                next_term += 2
            else:
                reduce()
        while ops:
            reduce()
        return values[0]


# ---------------------------------------------------------------------------
# Dispatch on the next characters. Trying every alternative in airspeed's order raises
# NoMatch for each one that fails, most of the parse's time; these tables keep, in the same
# order, only the alternatives whose expression can match what starts at the position, so
# the first that matches is the same one. Only ASCII characters are in the tables (re.I folds
# some non-ASCII letters onto ASCII ones): at any other character every alternative is tried.
# ---------------------------------------------------------------------------

_BLOCK = (
    Parser.p_text,
    Parser.p_reference,
    Parser.p_comment,
    Parser.p_if,
    Parser.p_set,
    Parser.p_foreach,
    Parser.p_include,
    Parser.p_parse,
    Parser.p_macro,
    Parser.p_define,
    Parser.p_stop,
    Parser.p_evaluate,
    Parser.p_macro_call,
    Parser.p_fallthrough,
)
# the letter after `#` each directive's expression starts with (EVALUATE has no re.I)
_DIRECTIVE_LETTERS = {
    Parser.p_if: "iI",
    Parser.p_set: "sS",
    Parser.p_foreach: "fF",
    Parser.p_include: "iI",
    Parser.p_parse: "pP",
    Parser.p_macro: "mM",
    Parser.p_define: "dD",
    Parser.p_stop: "sS",
    Parser.p_evaluate: "e",
}


def _block_alternatives(first: str, second: str) -> tuple[Any, ...]:
    """The block elements that can match text starting with `first` (`#` or `$`) then
    `second` (an ASCII character, or "" at the end of the text)."""
    if second == "" or TEXT_PLAIN.match(first + second):
        # TEXT_PLAIN's `#$`/`\$$` at the end; else `#[^...]+` or `\$[^...]` matches whatever
        # follows `second`, and p_text comes first
        return (Parser.p_text,)
    if first == "$":
        return (Parser.p_reference,)
    possible = []
    for func in _BLOCK[2:]:
        if func is Parser.p_comment:
            can_match = second in "#*"
        elif func is Parser.p_macro_call:
            can_match = second.isalpha()
        elif func is Parser.p_fallthrough:
            can_match = True
        else:
            can_match = second in _DIRECTIVE_LETTERS[func]
        if can_match:
            possible.append(func)
    return tuple(possible)


_ASCII = [chr(code) for code in range(128)]
_AT_HASH = {c: _block_alternatives("#", c) for c in ["", *_ASCII]}
_AT_DOLLAR = {c: _block_alternatives("$", c) for c in ["", *_ASCII]}
_AT_HASH_OTHER = tuple(func for func in _BLOCK if func is not Parser.p_reference)
_AT_DOLLAR_OTHER = (Parser.p_text, Parser.p_reference)
_AT_TEXT = (Parser.p_text,)  # every other element starts with `#` or `$`

_VALUES = (
    Parser.ref_value,
    Parser.floating,
    Parser.integer,
    Parser.string,
    Parser.istring,
    Parser.array,
    Parser.dictionary,
    Parser.parenthesized,
    Parser.unary,
    Parser.boolean,
    Parser.null,
)
# the first characters each value's expression can start with (ASCII)
_VALUE_STARTS = {
    Parser.ref_value: "$",
    Parser.floating: "-.0123456789",
    Parser.integer: "-0123456789",
    Parser.string: "'",
    Parser.istring: '"',
    Parser.array: "[",
    Parser.dictionary: "{",
    Parser.parenthesized: "(",
    # UNARY_OP starts with \s*
    Parser.unary: "!n" + "".join(c for c in _ASCII if re.match(r"\s", c)),
    Parser.boolean: "tTfF",
    Parser.null: "nN",
}
_AT_VALUE = {c: tuple(f for f in _VALUES if c in _VALUE_STARTS[f]) for c in _ASCII}


def parse(text: str) -> list[Node]:
    """Parse a whole Velocity template; raises VelocitySyntaxError like airspeed would."""
    return Parser(text).template()
