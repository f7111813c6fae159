"""Velocity (airspeed 0.7.1) to Jinja2 converter.

`convert(source)` parses the legacy text with parser.py (airspeed's grammar) and emits a
Jinja template for `engine.Engine(autoescape=False)` that renders byte for byte what
airspeed rendered.  Velocity's evaluation model (a namespace chain, null references that
render their own source, Java shims, non-short-circuit `&&`) is kept through the helper
filters of runtime.py.  What cannot be carried over exactly is reported with
status "needs_review"; the converter never silently changes what a template renders.

CLI: `python -m templates_store.velocity.converter [FILE]` (stdin without FILE).
"""

from __future__ import annotations

import _string
import argparse
import bisect
import codecs
import contextlib
import json
import re
import string
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from templates_store.sandbox import gate
from templates_store.sandbox.budget import RenderLimits

from .errors import TemplateRenderError
from .parser import (
    BinOp,
    Comment,
    DefineDef,
    DictLit,
    Evaluate,
    Foreach,
    If,
    Include,
    IndexStep,
    InterpStr,
    ListLit,
    Lit,
    MacroCall,
    MacroDef,
    NameStep,
    Node,
    RangeLit,
    Reference,
    RefExpr,
    RefValue,
    Set,
    Stop,
    Text,
    Unary,
    VelocitySyntaxError,
    parse,
)
from .runtime import MUTATING_METHODS

__all__ = ["MAX_SOURCE_CHARS", "convert", "Conversion", "Issue", "jinja_string", "jinja_text"]

# The longest Velocity source convert() takes (characters). Conversion is linear in the size
# of the source, but compiling the result costs far more per character than parsing it (see
# `make bench`, "converter"); the legacy gateway's templates are all under 4,000 characters.
# Longer sources are not converted (needs_review); POST /v2/templates/convert answers 400.
MAX_SOURCE_CHARS = 200_000
# the most references and directives (`$`, `#`) a source may hold: the converted template must
# compile within the engine's token limit (the largest legacy template has 200)
MAX_DIRECTIVES = 1_000

EXACT = "exact"
EXACT_WITH_WARNINGS = "exact_with_warnings"
NEEDS_REVIEW = "needs_review"

SHIM_NAMES = frozenset(
    {
        "length",
        "replaceAll",
        "startsWith",
        "matches",
        "contains",
        "size",
        "get",
        "add",
        "set",
        "isEmpty",
        "keySet",
        "put",
        "putAll",
        "toString",
    }
)
_JSON_TYPES = (str, list, dict, int, float, bool)
# Names that exist as methods or attributes on some JSON value type and that the sandbox
# allows (templates_store.sandbox.gate): they may resolve at run time.
PYTHON_METHODS = frozenset(name for tp in _JSON_TYPES for name in gate.allowed_methods(tp))
# Public names a JSON value has that the sandbox refuses: legacy called them, we cannot.
REFUSED_METHODS = (
    frozenset(name for tp in _JSON_TYPES for name in dir(tp) if not name.startswith("_"))
    - PYTHON_METHODS
)


def specials_for(types: Iterable[type]) -> frozenset[str]:
    """The special methods of JSON values that the sandbox allows on each of `types` that has
    them."""
    named = {tp: set(dir(tp)) for tp in types}
    return frozenset(
        name
        for name in {name for tp in _JSON_TYPES for name in gate.allowed_specials(tp)}
        if all(
            name in gate.allowed_specials(tp) or name in gate.allowed_methods(tp)
            for tp, names in named.items()
            if name in names
        )
    )


# The pure special methods airspeed let templates call (`$s.__len__()`), allowed as well: those
# the sandbox allows on every value type that has them (which type a value has is only known
# at send time; one the sandbox refuses there would fail where legacy rendered).
SPECIAL_METHODS = specials_for(gate.VALUE_TYPES)
# What a template's values can be when it calls no method that makes anything else: data is
# JSON, and the other methods make JSON values, tuples or numbers (bytes, dict views and
# complex numbers only come from the calls RESULT_TYPES names).
_PLAIN_TYPES = tuple(
    tp
    for tp in gate.VALUE_TYPES
    if tp not in (bytes, type({}.keys()), type({}.values()), type({}.items()))
)
PLAIN_SPECIAL_METHODS = specials_for(_PLAIN_TYPES)
# A missing dict key with one of these names resolves to a bound method in airspeed.
DICT_METHOD_NAMES = frozenset(n for n in dir(dict) if not n.startswith("_")) | frozenset(
    {"isEmpty", "keySet", "put", "putAll", "toString"}
)
FOREACH_KEYS = frozenset({"count", "index", "hasNext", "first", "last"})
# Names that are methods on some value a template can hold: `$s.upper` without parentheses
# is the method itself, and a special method of a method (`$s.upper.__eq__`) is refused by
# the sandbox where airspeed rendered it (or its memory address).
METHOD_NAMES = (
    frozenset(
        name
        for tp in gate.VALUE_TYPES
        for name in dir(tp)
        if not name.startswith("_") and callable(getattr(tp, name, None))
    )
    | SHIM_NAMES
    | DICT_METHOD_NAMES
)
# What a call returns when its type is known from its name alone (the text methods that give
# bytes, the dict methods that give views): later steps are checked against that type.
RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "encode": (bytes,),
    "to_bytes": (bytes,),
    "keys": (type({}.keys()),),
    "values": (type({}.values()),),
    "items": (type({}.items()),),
    # (a negative number to a fractional power is complex, which the sandbox does not open)
    "__pow__": (complex,),
    "__rpow__": (complex,),
}
# the calls that make a value of a type JSON has not (bytes, a dict view): a template that
# makes none holds only _PLAIN_TYPES
_MAKES_OTHER_TYPES = frozenset(
    name for name, types in RESULT_TYPES.items() if set(types) & set(gate.VALUE_TYPES)
)
# airspeed parses recursively: parentheses nested 81 deep, or 120 chained steps, exceed
# Python's recursion limit at the top of a template (less inside blocks), and the legacy
# gateway answered "system error". Past these, a person decides.
MAX_LEGACY_PARENS = 40
MAX_LEGACY_STEPS = 60
# the longest receiver a lazy call repeats (a chain of n lazy calls repeats its start 2^n times)
MAX_LAZY_RECEIVER_CHARS = 600
# Python compiles at most 20 nested loops in one function (its CO_MAXBLOCKS), and each
# #foreach is one `for` in the function of its body (the template's, or a hoisted macro's).
MAX_FOREACH_NESTING = 20


@dataclass
class Issue:
    line: int
    column: int
    construct: str
    message: str
    severity: str  # "warning" | "error"


@dataclass
class Conversion:
    source: str | None
    status: str
    issues: list[Issue] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "status": self.status,
            "issues": [asdict(issue) for issue in self.issues],
        }


_JINJA_STRING_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)},
    ord("\\"): "\\\\",
    ord("'"): "\\'",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}


def jinja_string(value: str) -> str:
    """A Jinja string literal for `value` (Jinja decodes literals with unicode-escape)."""
    return "'" + value.translate(_JINJA_STRING_ESCAPES) + "'"


# a `\r`, and a `{` that would open a tag with what follows (`\Z`: the next chunk may be a tag)
_JINJA_TEXT_FINAL = re.compile(r"\r|\{(?=[{%#\r])")
_JINJA_TEXT_CHUNK = re.compile(r"\r|\{(?=[{%#\r]|\Z)")
_JINJA_TEXT_ESCAPES = {"\r": "{{ '\\r' }}", "{": "{{ '{' }}"}


def jinja_text(text: str, final: bool = False) -> str:
    """Template data that Jinja outputs unchanged.

    Jinja would read `{{`, `{%`, `{#` as tags and turns `\\r` into `\\n`; a `{` at the end of
    a chunk is also escaped since the next chunk may be a tag.
    """
    pattern = _JINJA_TEXT_FINAL if final else _JINJA_TEXT_CHUNK
    return pattern.sub(lambda m: _JINJA_TEXT_ESCAPES[m.group()], text)


class _LineIndex:
    """Line and column of positions in one text, by binary search over its newlines (computing
    them from the start of the text for each issue would be quadratic)."""

    def __init__(self, text: str) -> None:
        self.newlines = [m.start() for m in re.finditer("\n", text)]

    def line_col(self, pos: int) -> tuple[int, int]:
        # same figures as parser.line_col: newlines before `pos`, and the column after the last
        before = bisect.bisect_left(self.newlines, pos)
        line_start = self.newlines[before - 1] + 1 if before else 0
        return before + 1, pos - line_start + 1


class _Emitter:
    def __init__(
        self, source: str, channel: str | None, defines: frozenset[str] = frozenset()
    ) -> None:
        self.source = source
        self.lines = _LineIndex(source)
        self.channel = channel
        self.issues: list[Issue] = []
        self.hoisted: list[str] = []
        self.counter = 0
        # names bound to a #define (this template's, its #evaluate texts', an outer one's)
        self.define_names: set[str] = set(defines)
        # a dynamic #evaluate (whose #defines are unknown); a mutating method held as a value
        self.dynamic_evaluate = False
        self.holds_mutator = False
        # an #evaluate of any text; a call that makes bytes or a dict view (then any special
        # method some value type has is checked against every type: SPECIAL_METHODS)
        self.evaluates = False
        self.makes_other_types = False
        self.lazy_allowed = True
        # the special methods allowed on whatever a value of this template can be
        self.special_methods = SPECIAL_METHODS
        self.pos_override: int | None = None
        self.warned_output = False
        self._seen: set[tuple[int, str]] = set()
        # effects() by value node (id): BinOp operands are asked again at every level
        self._effects: dict[int, bool] = {}
        # emitting the main body, whose output the engine streams and bounds chunk by chunk
        # (macro, define and interpolated-string bodies build text that is counted instead)
        self.streamed = True

    # -- reporting ----------------------------------------------------------
    def issue(self, pos: int, construct: str, message: str, severity: str) -> None:
        if self.pos_override is not None:
            pos = self.pos_override
        key = (pos, construct)
        if key in self._seen:
            return
        self._seen.add(key)
        line, column = self.lines.line_col(pos)
        self.issues.append(Issue(line, column, construct, message, severity))

    def review(self, pos: int, construct: str, message: str) -> None:
        self.issue(pos, construct, message, "error")

    def warn(self, pos: int, construct: str, message: str) -> None:
        self.issue(pos, construct, message, "warning")

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # -- analysis -------------------------------------------------------------
    def collect_defines(self, walked: list[Node]) -> None:
        """Names bound by the #defines among `walked` (walk_nodes of a template) and in the
        literal texts of its #evaluates."""
        for node in walked:
            if isinstance(node, DefineDef):
                self.define_names.add(node.name)
            elif isinstance(node, Evaluate):
                self.evaluates = True
                # an evaluated text shares the namespace: its #defines are visible here
                text = static_text(node.value)
                if text is None:
                    # (its #defines are only known when it runs: any name may be one)
                    self.dynamic_evaluate = True
                else:
                    with contextlib.suppress(VelocitySyntaxError, RecursionError):
                        self.collect_defines(walk_nodes(parse(text)))
            for value in statement_values(node):
                for v in walk_values(value):
                    if not isinstance(v, RefExpr):
                        continue
                    for step in v.steps[1:]:
                        if not isinstance(step, NameStep):
                            continue
                        if step.params is None and step.name in MUTATING_METHODS:
                            # `$l.pop` without parentheses: a method that changes data, kept
                            # as a value and callable later under any name (`$h.f()`)
                            self.holds_mutator = True
                        elif step.params is not None and step.name in _MAKES_OTHER_TYPES:
                            self.makes_other_types = True

    def pure(self, value: Any) -> bool:
        """Evaluating `value` can neither fail nor change anything (so it may be eager)."""
        if isinstance(value, Lit):
            return True
        if isinstance(value, RefValue):
            return self.pure_ref(value.ref.expr)
        if isinstance(value, InterpStr):
            return all(
                isinstance(n, (Text, Comment))
                or isinstance(n, Reference)
                and self.pure_ref(n.expr)
                and (n.alternate is None or self.pure(n.alternate))
                for n in value.block
            )
        if isinstance(value, ListLit):
            return all(self.pure(v) for v in value.items)
        if isinstance(value, DictLit):
            return all(
                isinstance(k, Lit) and not isinstance(k.value, (list, dict)) and self.pure(v)
                for k, v in value.pairs
            )
        if isinstance(value, RangeLit):
            return (
                isinstance(value.low, Lit)
                and isinstance(value.high, Lit)
                and isinstance(value.low.value, int)
                and isinstance(value.high.value, int)
            )
        if isinstance(value, Unary):
            return self.pure(value.value)
        return False

    def pure_ref(self, expr: RefExpr | None) -> bool:
        if expr is None:
            return False
        first = expr.steps[0]
        if first.name in self.define_names:
            return False
        for step in expr.steps:
            if isinstance(step, IndexStep) or step.params is not None:
                return False
            if step.name.startswith("_") and step is not first:
                return False
            if step.index is not None and not (
                isinstance(step.index, Lit) and isinstance(step.index.value, int)
            ):
                return False
        return True

    def effects(self, value: Any) -> bool:
        """Evaluating `value` may change data another operand reads (itself or any value
        within it, as walk_values visits them)."""
        known = self._effects.get(id(value))
        if known is None:
            known = self._effects_here(value) or any(
                self.effects(child) for child in _value_children(value)
            )
            self._effects[id(value)] = known
        return known

    def _effects_here(self, node: Any) -> bool:
        if isinstance(node, RefExpr):
            if node.steps[0].name in self.define_names or node.steps[0].params is not None:
                return True
            if self.dynamic_evaluate:
                return True
            if self.holds_mutator and any(
                isinstance(step, NameStep) and step.params is not None for step in node.steps
            ):
                return True
            for step in node.steps[1:]:
                if (
                    isinstance(step, NameStep)
                    and step.params is not None
                    and step.name in MUTATING_METHODS
                ):
                    return True
        elif isinstance(node, InterpStr) and any(
            not isinstance(n, (Text, Comment, Reference)) for n in node.block
        ):
            return True
        return False

    # -- templates --------------------------------------------------------------
    def block(self, nodes: list[Node], ns: str, depth: int) -> list[tuple[str, str]]:
        pieces: list[tuple[str, str]] = []
        for node in nodes:
            self.statement(node, ns, depth, pieces)
        return pieces

    def block_into(
        self, nodes: list[Node], ns: str, depth: int, out: list[tuple[str, str]]
    ) -> None:
        """block(), appending to `out` (copying each nested body's pieces into its parent's
        would cost the nesting depth times the body)."""
        for node in nodes:
            self.statement(node, ns, depth, out)

    def nested_block(self, nodes: list[Node]) -> list[tuple[str, str]]:
        """A body rendered into a string (macro, define, interpolated string)."""
        saved = self.streamed
        self.streamed = False
        try:
            return self.block(nodes, "_v", 0)
        finally:
            self.streamed = saved

    def statement(self, node: Node, ns: str, depth: int, out: list[tuple[str, str]]) -> None:
        if isinstance(node, Text):
            out.append(("text", node.text))
        elif isinstance(node, Comment):
            pass
        elif isinstance(node, Reference):
            self.output_reference(node, ns, out)
        elif isinstance(node, If):
            for i, (cond, body) in enumerate(node.branches):
                keyword = "if" if i == 0 else "elif"
                out.append(("code", f"{{% {keyword} {self.expr(cond, ns, node.start)} %}}"))
                self.block_into(body, ns, depth, out)
            if node.else_block is not None:
                out.append(("code", "{% else %}"))
                self.block_into(node.else_block, ns, depth, out)
            out.append(("code", "{% endif %}"))
        elif isinstance(node, Set):
            value = self.expr(node.value, ns, node.start)
            if len(node.terms) == 1:
                out.append(
                    ("code", f"{{% do {ns}|vset({jinja_string(node.terms[0])}, {value}) %}}")
                )
            else:
                terms = "[" + ", ".join(jinja_string(t) for t in node.terms) + "]"
                out.append(("code", f"{{% do {ns}|vsetp({terms}, {value}) %}}"))
        elif isinstance(node, Foreach):
            if depth == MAX_FOREACH_NESTING:
                # reported (once per nest) instead of compiling: the code Jinja generates for
                # nested loops grows with the square of the depth, and Python refuses it anyway
                self.review(
                    node.start,
                    "nesting",
                    f"#foreach nested more than {MAX_FOREACH_NESTING} deep: the converted "
                    f"template cannot compile (Python allows {MAX_FOREACH_NESTING} nested loops)",
                )
            inner = f"_v{depth + 1}"
            iterable = self.expr(node.iterable, ns, node.start)
            out.append(
                (
                    "code",
                    f"{{% for {inner} in {ns}|vfor({jinja_string(node.var)}, {iterable}) %}}",
                )
            )
            self.block_into(node.block, inner, depth + 1, out)
            out.append(("code", "{% endfor %}"))
        elif isinstance(node, Include):
            self.warn(
                node.start,
                f"#{node.kind}",
                f"#{node.kind} always failed in the legacy gateway (no loader): kept failing",
            )
            name = self.expr(node.name, ns, node.start)
            message = jinja_string(f"#{node.kind} is not supported (no template loader)")
            out.append(("code", f"{{% do {message}|vraise({name}) %}}"))
        elif isinstance(node, (MacroDef, DefineDef)):
            macro = self.function(node)
            args = "[" + ", ".join(jinja_string(a) for a in node.args) + "]"
            helper = "vdefmacro" if isinstance(node, MacroDef) else "vdefine"
            out.append(
                ("code", f"{{% do {ns}|{helper}({jinja_string(node.name)}, {macro}, {args}) %}}")
            )
        elif isinstance(node, Stop):
            out.append(("code", f"{{{{ {ns}|vstop }}}}"))
        elif isinstance(node, Evaluate):
            text = static_text(node.value)
            if text is None:
                self.warn(
                    node.start,
                    "#evaluate",
                    "#evaluate converts and renders a text only known at run time: "
                    "it is not checked here",
                )
            else:
                self.evaluated(node, text)
            out.append(
                ("code", f"{{{{ {ns}|vevaluate({self.expr(node.value, ns, node.start)}) }}}}")
            )
        elif isinstance(node, MacroCall):
            args = "[" + ", ".join(self.expr(a, ns, node.start) for a in node.args) + "]"
            out.append(("code", f"{{{{ {ns}|vmacro({jinja_string(node.name)}, {args}) }}}}"))
        else:  # pragma: no cover - parser produces nothing else
            raise TypeError(node)

    def evaluated(self, node: Evaluate, text: str) -> None:
        """A literal #evaluate text: converted now (as at run time), its issues reported
        at the #evaluate with their place in the text."""
        # (as convert_evaluated converts it when it runs: eager, its context unknown there)
        nested, _ = _convert(text, self.channel, frozenset(self.define_names), lazy=False)
        for issue in nested.issues:
            self.issue(
                node.start,
                issue.construct,
                f"in the #evaluate text (line {issue.line}, column {issue.column}): "
                f"{issue.message}",
                issue.severity,
            )

    def function(self, node: MacroDef | DefineDef) -> str:
        name = self.fresh("_m" if isinstance(node, MacroDef) else "_d")
        body = finalize(self.nested_block(node.block), final=False)
        self.hoisted.append(f"{{% macro {name}(_v) %}}{body}{{% endmacro %}}")
        return name

    def output_reference(self, node: Reference, ns: str, out: list[tuple[str, str]]) -> None:
        if node.expr is None:
            if node.alternate is not None:
                out.append(("code", f"{{{{ {self.expr(node.alternate, ns, node.start)}|vs }}}}"))
            else:
                out.append(("text", node.source))
            return
        self.note_output(node)
        value = self.ref_expr(node.expr, ns, node.start)
        if node.alternate is not None:
            if self.pure(node.alternate):
                alt = self.expr(node.alternate, ns, node.start)
                out.append(("code", f"{{{{ {value}|valt({alt}) }}}}"))
            else:
                # the default is only evaluated when the value is null
                alt = self.expr(node.alternate, ns, node.start)
                tmp = self.fresh("_t")
                out.append(("code", f"{{% set {tmp} = {value} %}}"))
                out.append(("code", f"{{{{ ({alt})|vs if {tmp} is none else {tmp}|vs }}}}"))
        elif node.silent:
            helper = "vqt" if self.streamed else "vq"
            out.append(("code", f"{{{{ {value}|{helper} }}}}"))
        elif (
            len(node.expr.steps) == 1
            and node.expr.steps[0].params is None
            and (node.expr.steps[0].index is None)
        ):
            name = jinja_string(node.expr.steps[0].name)
            helper = "vnt" if self.streamed else "vno"
            out.append(("code", f"{{{{ {ns}|{helper}({name}, {jinja_string(node.source)}) }}}}"))
        else:
            helper = "vot" if self.streamed else "vo"
            out.append(("code", f"{{{{ {value}|{helper}({jinja_string(node.source)}) }}}}"))

    def note_output(self, node: Reference) -> None:
        if self.warned_output:
            return
        self.warned_output = True
        if self.channel in (None, "mail"):
            self.warn(
                node.start,
                "unescaped_output",
                "the template outputs parameter values unescaped (legacy behaviour, kept: "
                "render with autoescape off); in a mail the output carries unescaped input",
            )

    # -- expressions ----------------------------------------------------------------
    def expr(self, value: Any, ns: str, pos: int) -> str:
        if isinstance(value, Lit):
            return literal(value.value)
        if isinstance(value, RefValue):
            if value.ref.expr is None:
                # airspeed calls a missing calculate(): a TypeError at render time
                return f"({jinja_string('invalid reference ' + value.ref.source)}|vraise)"
            return self.ref_expr(value.ref.expr, ns, value.start)
        if isinstance(value, InterpStr):
            return self.interpolated(value, ns)
        if isinstance(value, ListLit):
            return "[" + ", ".join(self.expr(v, ns, pos) for v in value.items) + "]"
        if isinstance(value, RangeLit):
            bounds = (value.low, value.high)
            if all(isinstance(b, Lit) and type(b.value) is int for b in bounds):
                size = abs(value.high.value - value.low.value) + 1
                # (each #foreach item passes two of the checkpoints the bound counts)
                if size > RenderLimits.max_loop_iterations // 2:
                    self.review(
                        pos,
                        "loop_limit",
                        f"a range of {size:,} numbers: a loop over it passes this engine's "
                        "bound on loop iterations, where legacy rendered it",
                    )
            low = self.expr(value.low, ns, pos)
            high = self.expr(value.high, ns, pos)
            return f"({low}|vrange({high}))"
        if isinstance(value, DictLit):
            pairs = ", ".join(
                f"{self.expr(k, ns, pos)}: {self.expr(v, ns, pos)}" for k, v in value.pairs
            )
            return "{" + pairs + "}"
        if isinstance(value, Unary):
            return f"(not {self.expr(value.value, ns, pos)})"
        if isinstance(value, BinOp):
            if (self.effects(value.left) and not isinstance(value.right, Lit)) or (
                self.effects(value.right) and not isinstance(value.left, Lit)
            ):
                self.review(
                    value.start,
                    "evaluation_order",
                    "an operand changes data the other operand reads; airspeed evaluates "
                    "the right operand first",
                )
            left = self.expr(value.left, ns, pos)
            right = self.expr(value.right, ns, pos)
            if value.op == "and":
                return f"({left}|vand({right}))"
            if value.op == "or":
                return f"({left}|vor({right}))"
            op = "//" if value.op == "/" else value.op
            return f"({left} {op} {right})"
        raise TypeError(value)  # pragma: no cover

    def interpolated(self, value: InterpStr, ns: str) -> str:
        saved = self.pos_override
        self.pos_override = value.start if saved is None else saved
        # the string is a value (counted as it is built), not streamed output
        streamed, self.streamed = self.streamed, False
        try:
            simple = all(isinstance(n, (Text, Comment, Reference)) for n in value.block)
            if simple and self.pure(value):
                parts = []
                for node in value.block:
                    if isinstance(node, Text):
                        parts.append(jinja_string(node.text))
                    elif isinstance(node, Reference):
                        pieces: list[tuple[str, str]] = []
                        self.output_reference(node, ns, pieces)
                        for kind, text in pieces:
                            if kind == "text":
                                parts.append(jinja_string(text))
                            else:
                                parts.append("(" + text[3:-3] + ")")
                if not parts:
                    return "''"
                if len(parts) == 1:
                    return f"({parts[0]}|vs)"
                return "(" + " ~ ".join(parts) + ")"
            name = self.fresh("_s")
            body = finalize(self.nested_block(value.block), final=False)
            self.hoisted.append(f"{{% macro {name}(_v) %}}{body}{{% endmacro %}}")
            return f"({ns}|vblock({name}))"
        finally:
            self.pos_override = saved
            self.streamed = streamed

    def ref_expr(self, expr: RefExpr, ns: str, pos: int) -> str:
        steps = expr.steps
        first = steps[0]
        if first.params is not None:
            self.check_args(first.params, pos)
            code = f"{ns}|vnc({jinja_string(first.name)}, {self.args(first.params, ns, pos)})"
        elif first.index is not None:
            name = jinja_string(first.name)
            code = f"{ns}|vni({name}, {self.expr(first.index, ns, pos)})"
            if self.lazy_values([first.index], [], ""):
                # airspeed evaluates the index only when the name holds a value (a #define
                # renders without it)
                code = f"({code} if {ns}|vhasn({name}) else {ns}|vn({name}))"
            else:
                self.check_index(first.index, pos)
        else:
            code = f"{ns}|vn({jinja_string(first.name)})"
        if len(steps) > MAX_LEGACY_STEPS:
            self.review(
                pos,
                "too_deep",
                f"a reference of {len(steps)} steps: the legacy engine's parser may have "
                "exceeded Python's recursion limit (its 'system error') where this renders",
            )
        known: tuple[type, ...] = ()  # the type the previous step's value is known to have
        for i, step in enumerate(steps[1:], start=1):
            of_known, known = known, ()
            if isinstance(step, IndexStep):
                if not isinstance(step.index, Lit):
                    self.review(
                        pos,
                        "index_expression",
                        "airspeed evaluates this index against the indexed value, "
                        "not the template namespace",
                    )
                code = f"{code}|vi({self.expr(step.index, ns, pos)})"
                continue
            name = step.name
            if (
                name.startswith("_") and name not in self.special_methods
            ) or name in REFUSED_METHODS:
                self.review(
                    pos,
                    "unsafe_name",
                    f"'{name}' (a Python internal) is refused by the sandbox; legacy rendered it",
                )
            self.check_step_of(steps, i, of_known, pos)
            if step.params is not None:
                known = RESULT_TYPES.get(name, ())
                if name in ("encode", "decode"):
                    self.check_codec(step.params, pos)
                elif name in ("replaceAll", "replaceFirst") and len(step.params) > 1:
                    self.check_replacement(step.params[1], pos)
                lazy = self.lazy_values(step.params, steps[:i], code)
                if not lazy:
                    self.check_args(step.params, pos)
                if name not in PYTHON_METHODS and name not in SHIM_NAMES:
                    self.warn(
                        pos,
                        "java_method",
                        f"'{name}()' is not supported by the legacy engine: the reference "
                        "rendered literally, kept for byte compatibility",
                    )
                call = f"{code}|vc({jinja_string(name)}, {self.args(step.params, ns, pos)})"
                # airspeed evaluates the arguments only when it finds something to call: the
                # receiver (evaluated twice: it can change nothing) is asked first
                code = f"({call} if {code}|vhas({jinja_string(name)}) else none)" if lazy else call
            elif step.index is not None:
                item = f"{code}|vpi({jinja_string(name)}, {self.expr(step.index, ns, pos)})"
                if self.lazy_values([step.index], steps[:i], code):
                    # airspeed evaluates the index only when `.name` finds a value
                    code = f"({item} if {code}|vhasi({jinja_string(name)}) else none)"
                else:
                    self.check_index(step.index, pos)
                    code = item
            else:
                prev = steps[i - 1]
                looped = (
                    i == 1
                    and isinstance(prev, NameStep)
                    and prev.name == "foreach"
                    and name in FOREACH_KEYS
                )
                if name in DICT_METHOD_NAMES and not looped:
                    self.warn(
                        pos,
                        "dict_method_key",
                        f"'.{name}' names a dict method: when the key is missing the legacy "
                        "engine rendered a bound method (non-deterministic)",
                    )
                elif (name in SHIM_NAMES or name in PYTHON_METHODS) and not looped:
                    self.warn(
                        pos,
                        "method_reference",
                        f"'.{name}' without parentheses names a method (a Java shim or a "
                        "Python method of str/list/int/float): on such a value both engines "
                        "render the function itself, with a memory address "
                        f"(non-deterministic); '.{name}()' calls it",
                    )
                code = f"{code}|vp({jinja_string(name)})"
        return code

    def check_step_of(self, steps: list[Any], i: int, of_known: tuple[type, ...], pos: int) -> None:
        """Step `i` against what the previous step is known to be: a method named without
        parentheses (whose special methods the sandbox refuses), or a value of a type known
        from the call that made it (bytes, a dict view: the sandbox allows fewer names there
        than on the JSON types the names are checked against)."""
        name = steps[i].name
        prev = steps[i - 1]
        if (
            name.startswith("__")
            and isinstance(prev, NameStep)
            and prev.params is None
            and prev.index is None
            and i > 1
            and (prev.name in METHOD_NAMES or prev.name.startswith("__"))
            and not (i == 2 and steps[0].name == "foreach" and prev.name in FOREACH_KEYS)
        ):
            self.review(
                pos,
                "special_of_method",
                f"'.{prev.name}.{name}': a special method of what may be a method itself; "
                "legacy rendered it (or a memory address), the sandbox refuses it",
            )
        for tp in of_known:
            # (a name the type does not have is missing in both engines alike)
            allowed = gate.allowed_methods(tp) | gate.allowed_specials(tp)
            if hasattr(tp, name) and name not in allowed:
                self.review(
                    pos,
                    "unsafe_name",
                    f"'.{name}' of {tp.__name__} is refused by the sandbox; legacy rendered it",
                )

    def check_replacement(self, value: Any, pos: int) -> None:
        """A regular expression replacement named like a method (`$d.get`): when it is one,
        airspeed's re.sub called it for each match; the sandbox takes text only."""
        if isinstance(value, RefValue) and value.ref.expr is not None:
            last = value.ref.expr.steps[-1]
            named = len(value.ref.expr.steps) > 1 and isinstance(last, NameStep)
            if named and last.params is None and last.index is None and last.name in METHOD_NAMES:
                self.review(
                    pos,
                    "method_argument",
                    f"'.{last.name}' as a replacement may be a method, which legacy called "
                    "for each match; the sandbox takes text only",
                )

    def check_codec(self, params: list[Any], pos: int) -> None:
        """An encode/decode's codec: one Python has but the sandbox does not allow (idna,
        punycode) rendered in legacy and fails here; one only known at send time may be."""
        if not params:
            return
        codec = params[0]
        if isinstance(codec, Lit) and isinstance(codec.value, str):
            try:
                codecs.lookup(codec.value)
            except LookupError:
                return  # (no such codec: both engines fail)
            if not gate.codec_allowed(codec.value):
                self.review(
                    pos, "codec", f"the {codec.value!r} codec is not allowed by the sandbox"
                )
        else:
            self.review(
                pos,
                "codec",
                "a codec known only when the message is sent: the sandbox allows fewer than "
                "Python has",
            )

    def args(self, params: list[Any], ns: str, pos: int) -> str:
        return "[" + ", ".join(self.expr(p, ns, pos) for p in params) + "]"

    def lazy_values(self, values: list[Any], receiver: list[Any], code: str) -> bool:
        """A call's arguments or an index that may fail (a call among them) can be evaluated
        lazily, as airspeed did (it looked the name up first and evaluated them only when it
        found something): the receiver `receiver` (steps of a reference; its code is `code`)
        changes nothing, so evaluating it again to ask gives the same value, and the values
        change nothing either (airspeed looked the name up before evaluating them; the
        sandbox looks it up after). Receivers long enough that doubling them in chains of
        such steps could grow the text are left eager (and flagged)."""
        if all(self.pure(v) for v in values) or len(code) > MAX_LAZY_RECEIVER_CHARS:
            return False
        if not self.lazy_allowed or self.dynamic_evaluate or self.holds_mutator:
            return False
        if "|vhas" in code:
            # (a receiver that is itself lazy would be evaluated 4, 8… times down a chain)
            return False
        children: list[Any] = []
        if receiver:
            # (a new object: not memoised by id like the values effects() sees)
            prefix = RefExpr(receiver)
            if self._effects_here(prefix):
                return False
            children = _ref_expr_children(prefix)
        return not any(self.effects(v) for v in (*children, *values))

    def check_args(self, params: list[Any], pos: int) -> None:
        if not all(self.pure(p) for p in params):
            self.review(
                pos,
                "lazy_argument",
                "airspeed skips evaluating these arguments when the method is missing; "
                "they are evaluated eagerly here",
            )

    def check_index(self, index: Any, pos: int) -> None:
        if not self.pure(index):
            self.review(
                pos,
                "lazy_index",
                "airspeed skips evaluating this index when the value is null; "
                "it is evaluated eagerly here",
            )

    def check_format_fields(self, nodes: list[Node], walked: list[Node]) -> None:
        """`'{0.__class__}'.format($x)`: legacy rendered the internal, the sandbox refuses it.
        When the template formats strings, every text of it is checked for such fields (a
        format string only known at run time fails the render with a security error).
        `walked` is walk_nodes(nodes)."""
        values = [v for node in walked for v in statement_values(node)]
        formats = any(
            isinstance(v, RefExpr)
            and any(
                isinstance(step, NameStep)
                and step.params is not None
                and step.name in FORMAT_METHODS
                for step in v.steps
            )
            for value in values
            for v in walk_values(value)
        )
        if not formats:
            return
        texts = [(node.start, node.text) for node in statement_texts(nodes)]
        for value in values:
            for v in walk_values(value):
                if isinstance(v, Lit) and isinstance(v.value, str):
                    texts.append((v.start, v.value))
                elif isinstance(v, InterpStr):
                    texts.append((v.start, v.raw))
        for pos, text in texts:
            name = unsafe_format_field(text)
            if name is not None:
                self.review(
                    pos,
                    "unsafe_name",
                    f"the format field '.{name}' reads a Python internal: legacy rendered it, "
                    "the sandbox refuses it",
                )

    def check_depths(self, source: str, walked: list[Node]) -> None:
        """Nesting the two engines bound differently: parentheses deep enough for airspeed's
        recursive parser to fail, and more macros and #defines than this engine nests (each
        can call the next: airspeed nested them until Python's recursion limit)."""
        depth = deepest = 0
        for char in source:
            if char == "(":
                depth += 1
                deepest = max(deepest, depth)
            elif char == ")":
                depth = max(0, depth - 1)
        if deepest > MAX_LEGACY_PARENS:
            self.review(
                0,
                "too_deep",
                f"parentheses nested {deepest} deep: the legacy engine's parser may have "
                "exceeded Python's recursion limit (its 'system error') where this renders",
            )
        defined = sum(isinstance(node, (MacroDef, DefineDef)) for node in walked)
        if defined >= RenderLimits.max_depth:
            self.review(
                0,
                "too_deep",
                f"{defined} macros and #defines: calls nested deeper than "
                f"{RenderLimits.max_depth} are refused here, legacy nested them further",
            )

    def check_recursion(self, order: list[Node], ends: list[int]) -> None:
        """Reports each #define whose body (nested bodies and interpolated strings included)
        renders its own name, then each macro that can reach a call of itself.

        `order, ends` is walk_nodes_with_ends of the template. One pass over them: a nested
        body is not walked again for each enclosing #define or #macro, and cycles come from
        strongly connected components rather than a search from every macro."""
        # the #defines around the current node, per name, innermost last; `recursive` holds
        # the ones found to render themselves (if one is, every enclosing one of that name is)
        open_defines: list[tuple[int, str]] = []
        open_by_name: dict[str, list[int]] = {}
        recursive: set[int] = set()
        # the call graph: a macro name leads to each of its definitions, a definition to the
        # names it calls and to the definitions nested in its body (whose calls it makes too)
        definitions: dict[str, list[int]] = {}
        where: dict[str, int] = {}
        edges: dict[int, list[str | int]] = {}
        open_macros: list[int] = []
        for index, node in enumerate(order):
            while open_defines and ends[open_defines[-1][0]] <= index:
                open_by_name[open_defines.pop()[1]].pop()
            while open_macros and ends[open_macros[-1]] <= index:
                open_macros.pop()
            if isinstance(node, MacroDef):
                key = node.name.lower()
                where.setdefault(key, node.start)
                definitions.setdefault(key, []).append(index)
                edges[index] = []
                if open_macros:
                    edges[open_macros[-1]].append(index)
                open_macros.append(index)
            elif isinstance(node, DefineDef):
                open_defines.append((index, node.name))
                open_by_name.setdefault(node.name, []).append(index)
            elif isinstance(node, MacroCall):
                if open_macros:
                    edges[open_macros[-1]].append(node.name)
            elif isinstance(node, Reference) and node.expr is not None:
                for enclosing in reversed(open_by_name.get(node.expr.steps[0].name, ())):
                    if enclosing in recursive:
                        break  # and so are the ones around it
                    recursive.add(enclosing)
        for index, node in enumerate(order):
            if index in recursive:
                self.review(node.start, "recursion", "a #define that renders itself")
        graph: dict[str | int, list[str | int]] = {**definitions, **edges}  # type: ignore[dict-item]
        on_cycle = _nodes_on_cycles(graph)
        for key in definitions:
            if key in on_cycle:
                self.review(
                    where[key],
                    "recursion",
                    "recursive macro: airspeed's failure depth (Python's recursion limit) "
                    "cannot be reproduced exactly",
                )


def _nodes_on_cycles(graph: dict[Any, list[Any]]) -> set[Any]:
    """The nodes of `graph` that lie on a cycle (strongly connected components of more than one
    node; the graphs here have no self-loops). Tarjan's algorithm, without recursion."""
    index_of: dict[Any, int] = {}
    lowlink: dict[Any, int] = {}
    stack: list[Any] = []
    on_stack: set[Any] = set()
    result: set[Any] = set()
    for root in graph:
        if root in index_of:
            continue
        work = [(root, iter(graph.get(root, ())))]
        index_of[root] = lowlink[root] = len(index_of)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index_of:
                    index_of[successor] = lowlink[successor] = len(index_of)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(graph.get(successor, ()))))
                    break
                if successor in on_stack:
                    lowlink[node] = min(lowlink[node], index_of[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    lowlink[parent] = min(lowlink[parent], lowlink[node])
                if lowlink[node] == index_of[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        result.update(component)
    return result


def static_text(value: Any) -> str | None:
    """The text of a value known at conversion time: a string literal, or an interpolated
    string of plain text; None otherwise."""
    if isinstance(value, Lit):
        return value.value if isinstance(value.value, str) else None
    if isinstance(value, InterpStr) and all(isinstance(n, (Text, Comment)) for n in value.block):
        return "".join(n.text for n in value.block if isinstance(n, Text))
    return None


FORMAT_METHODS = frozenset({"format", "format_map"})


def unsafe_format_field(text: str, depth: int = 2) -> str | None:
    """The first `_`-prefixed attribute a `str.format` of `text` would read, if any."""
    if depth <= 0 or "{" not in text:
        return None
    try:
        for _literal, field_name, spec, _conversion in string.Formatter().parse(text):
            if field_name is None:
                continue
            _first, rest = _string.formatter_field_name_split(field_name)
            for is_attr, key in rest:
                if is_attr and key[:1] == "_":
                    return key
            found = unsafe_format_field(spec or "", depth - 1)
            if found is not None:
                return found
    except ValueError:
        return None
    return None


def statement_texts(nodes: list[Node]) -> list[Text]:
    """The Text nodes of the template's own statements (bodies of #if, #foreach, #macro,
    #define), not those inside interpolated strings."""
    out: list[Text] = []
    _collect_statement_texts(nodes, out)
    return out


def _collect_statement_texts(nodes: list[Node], out: list[Text]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            out.append(node)
        elif isinstance(node, If):
            for _cond, body in node.branches:
                _collect_statement_texts(body, out)
            if node.else_block:
                _collect_statement_texts(node.else_block, out)
        elif isinstance(node, (Foreach, MacroDef, DefineDef)):
            _collect_statement_texts(node.block, out)


def statement_values(node: Node) -> list[Any]:
    """The values a statement evaluates itself (not those of nested statements)."""
    if isinstance(node, If):
        return [cond for cond, _body in node.branches]
    if isinstance(node, Foreach):
        return [node.iterable]
    if isinstance(node, Set):
        return [node.value]
    if isinstance(node, MacroCall):
        return list(node.args)
    if isinstance(node, Reference):
        return [v for v in (node.expr, node.alternate) if v is not None]
    if isinstance(node, (Evaluate,)):
        return [node.value]
    if isinstance(node, Include):
        return [node.name]
    return []


def literal(value: Any) -> str:
    if value is None:
        return "none"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return f"({value})" if value < 0 else str(value)
    if isinstance(value, float):
        text = repr(value)
        return f"({text})" if text.startswith("-") else text
    if isinstance(value, str):
        return jinja_string(value)
    raise TypeError(value)  # pragma: no cover


def finalize(pieces: list[tuple[str, str]], final: bool = True) -> str:
    out: list[str] = []
    text: list[str] = []
    for kind, value in pieces:
        if kind == "text":
            text.append(value)
            continue
        if text:
            out.append(jinja_text("".join(text)))
            text = []
        out.append(value)
    if text:
        out.append(jinja_text("".join(text), final=final))
    return "".join(out)


# The walks build lists (a chain of nested generators costs one step per level for every
# node it yields: quadratic in the nesting depth).


def walk_nodes(nodes: list[Node]) -> list[Node]:
    """All statement nodes, depth first, including those inside interpolated strings."""
    out: list[Node] = []
    _collect_nodes(nodes, out, None)
    return out


def walk_nodes_with_ends(nodes: list[Node]) -> tuple[list[Node], list[int]]:
    """walk_nodes, and for the node at each index, the index past the nodes it contains."""
    out: list[Node] = []
    ends: list[int] = []
    _collect_nodes(nodes, out, ends)
    return out, ends


def _collect_nodes(nodes: list[Node], out: list[Node], ends: list[int] | None) -> None:
    for node in nodes:
        index = len(out)
        out.append(node)
        if ends is not None:
            ends.append(0)
        if isinstance(node, If):
            for cond, body in node.branches:
                _collect_values_nodes(cond, out, ends)
                _collect_nodes(body, out, ends)
            if node.else_block:
                _collect_nodes(node.else_block, out, ends)
        elif isinstance(node, Foreach):
            _collect_values_nodes(node.iterable, out, ends)
            _collect_nodes(node.block, out, ends)
        elif isinstance(node, (MacroDef, DefineDef)):
            _collect_nodes(node.block, out, ends)
        elif isinstance(node, Set):
            _collect_values_nodes(node.value, out, ends)
        elif isinstance(node, MacroCall):
            for arg in node.args:
                _collect_values_nodes(arg, out, ends)
        elif isinstance(node, Reference):
            if node.expr is not None:
                _collect_values_nodes(node.expr, out, ends)
            if node.alternate is not None:
                _collect_values_nodes(node.alternate, out, ends)
        elif isinstance(node, (Evaluate,)):
            _collect_values_nodes(node.value, out, ends)
        if ends is not None:
            ends[index] = len(out)


def _collect_values_nodes(value: Any, out: list[Node], ends: list[int] | None) -> None:
    """The statements of the interpolated strings among walk_values(value), in that order."""
    if isinstance(value, InterpStr):
        _collect_nodes(value.block, out, ends)
    children = _value_children(value)
    for child in children:
        _collect_values_nodes(child, out, ends)


def walk_values(value: Any) -> list[Any]:
    """`value` and every value within it, depth first (not the statements of interpolated
    strings: only their references' values)."""
    out: list[Any] = []
    _collect_values(value, out)
    return out


def _collect_values(value: Any, out: list[Any]) -> None:
    out.append(value)
    for child in _value_children(value):
        _collect_values(child, out)


def _value_children(value: Any) -> Any:
    """The values directly within `value`, in walk_values order."""
    children = _VALUE_CHILDREN.get(type(value))
    return children(value) if children is not None else ()


def _ref_expr_children(value: RefExpr) -> list[Any]:
    children = []
    for step in value.steps:
        if isinstance(step, IndexStep):
            children.append(step.index)
        else:
            children.extend(step.params or ())
            if step.index is not None:
                children.append(step.index)
    return children


def _interp_children(value: InterpStr) -> list[Any]:
    children = []
    for node in value.block:
        if isinstance(node, Reference):
            if node.expr is not None:
                children.append(node.expr)
            if node.alternate is not None:
                children.append(node.alternate)
    return children


# by exact type: the parser's value classes have no subclasses
_VALUE_CHILDREN: dict[type, Any] = {
    RefValue: lambda v: (v.ref.expr,) if v.ref.expr is not None else (),
    RefExpr: _ref_expr_children,
    ListLit: lambda v: v.items,
    DictLit: lambda v: [item for pair in v.pairs for item in pair],
    RangeLit: lambda v: (v.low, v.high),
    Unary: lambda v: (v.value,),
    BinOp: lambda v: (v.left, v.right),
    InterpStr: _interp_children,
}


def convert(source: str, channel: str | None = None) -> Conversion:
    """Convert Velocity `source` to Jinja for `Engine(autoescape=False)`.

    `channel` ("sms", "mail", "push") only tunes the warnings: unescaped output is reported
    for mail (and when the channel is unknown). A source longer than MAX_SOURCE_CHARS is not
    converted: needs_review, without a Jinja source.
    """
    if len(source) > MAX_SOURCE_CHARS:
        return Conversion(
            None,
            NEEDS_REVIEW,
            [
                Issue(
                    1,
                    1,
                    "size_limit",
                    f"the source has {len(source):,} characters; the converter takes at most "
                    f"{MAX_SOURCE_CHARS:,}",
                    "error",
                )
            ],
        )
    conversion = _convert_or_refuse(source, channel, frozenset(), whole=True)
    if conversion.source is not None and conversion.status != "needs_review":
        _check_compiles(conversion)
    return conversion


def _convert_or_refuse(
    source: str,
    channel: str | None,
    defines: frozenset[str],
    whole: bool = False,
    lazy: bool = True,
) -> Conversion:
    """_convert, with a source past Python's own limits (nesting deeper than its recursion
    limit, a number literal longer than its 4,300 digits) reported, never raised."""
    directives = source.count("$") + source.count("#")
    if directives > MAX_DIRECTIVES:
        return Conversion(
            None,
            NEEDS_REVIEW,
            [
                Issue(
                    1,
                    1,
                    "too_complex",
                    f"the source has {directives:,} references and directives; the converter "
                    f"takes at most {MAX_DIRECTIVES:,}",
                    "error",
                )
            ],
        )
    try:
        return _convert(source, channel, defines, whole, lazy)[0]
    except (RecursionError, ValueError, MemoryError) as exc:
        reason = (
            "the template is nested too deeply to convert"
            if isinstance(exc, RecursionError)
            else f"the template cannot be converted: {str(exc)[:200]}"
        )
        return Conversion(None, NEEDS_REVIEW, [Issue(1, 1, "too_complex", reason, "error")])


def _check_compiles(conversion: Conversion) -> None:
    """Python's compiler has limits (nesting of parentheses and blocks) that airspeed does not:
    a template past them would fail only on our side, so it must not be called exact."""
    from .engine import Engine  # the engine imports this module's runtime users

    try:
        _compile_check_engine.setdefault("engine", Engine(autoescape=False)).compile(
            conversion.source
        )
    except (RecursionError, MemoryError, SyntaxError, TemplateRenderError) as exc:
        conversion.issues.append(
            Issue(1, 1, "compile_limit", f"the converted template does not compile: {exc}", "error")
        )
        conversion.status = "needs_review"


_compile_check_engine: dict[str, Any] = {}


def use_check_engine(engine: Any) -> None:
    """Check conversions with `engine` (the process's converted-template engine: what it
    compiles for the check, it keeps for the render)."""
    _compile_check_engine["engine"] = engine


def convert_evaluated(source: str, defines: frozenset[str]) -> Conversion:
    """An #evaluate text at run time: `defines` are the names bound to a #define in the
    namespace it shares (so its references to them are converted as they are statically).
    Arguments are evaluated eagerly: what the template around it holds is not known here."""
    return _convert_or_refuse(source, None, defines, lazy=False)


def _convert(
    source: str,
    channel: str | None,
    defines: frozenset[str],
    whole: bool = False,
    lazy: bool = True,
) -> tuple[Conversion, _Emitter]:
    """`whole`: `source` is a whole template (not an #evaluate text, whose values may come
    from the template around it). `lazy`: arguments airspeed might skip may be evaluated
    lazily (see lazy_values)."""
    emitter = _Emitter(source, channel, defines)
    emitter.lazy_allowed = lazy
    try:
        nodes = parse(source)
    except VelocitySyntaxError as exc:
        emitter.issues.append(
            Issue(
                exc.line,
                exc.column,
                "syntax",
                f"the legacy engine could not parse this template (it always answered "
                f"'system error'): {exc}",
                "error",
            )
        )
        failing = "{% do " + jinja_string(f"Velocity syntax error: {exc}") + "|vraise %}"
        return Conversion(failing, NEEDS_REVIEW, emitter.issues), emitter
    walked, ends = walk_nodes_with_ends(nodes)
    emitter.collect_defines(walked)
    if whole and not emitter.evaluates and not emitter.makes_other_types:
        # (a whole template that makes no bytes or dict view, and evaluates no text whose
        # calls are not all known here, holds only JSON's types and what plain calls make)
        emitter.special_methods = PLAIN_SPECIAL_METHODS
    emitter.check_recursion(walked, ends)
    emitter.check_depths(source, walked)
    emitter.check_format_fields(nodes, walked)
    body_pieces = emitter.block(nodes, "_v", 0)
    body = finalize(body_pieces)
    uses_code = any(kind == "code" for kind, _ in body_pieces) or emitter.hoisted
    prefix = "".join(emitter.hoisted)
    if uses_code:
        if any(isinstance(n, (Set, DefineDef, MacroDef, Evaluate)) for n in walked):
            prefix += "{% set _v = _vdata|vroot %}"
        else:
            # nothing is ever written into the outermost namespace: it can be the data
            prefix += "{% set _v = _vdata %}"
    jinja = prefix + body
    if any(i.severity == "error" for i in emitter.issues):
        status = NEEDS_REVIEW
    elif emitter.issues:
        status = EXACT_WITH_WARNINGS
    else:
        status = EXACT
    return Conversion(jinja, status, emitter.issues), emitter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", help="Velocity template file (default: stdin)")
    parser.add_argument("--channel", choices=("sms", "mail", "push"), default=None)
    options = parser.parse_args(argv)
    if options.file:
        with open(options.file, encoding="utf-8") as fh:
            text = fh.read()
    else:
        text = sys.stdin.read()
    conversion = convert(text, options.channel)
    if conversion.source is not None:
        sys.stdout.write(conversion.source)
        sys.stdout.write("\n")
    report = conversion.to_dict()
    report.pop("source")
    sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2))
    sys.stdout.write("\n")
    return 0 if conversion.status != NEEDS_REVIEW else 1


if __name__ == "__main__":
    raise SystemExit(main())
