"""The hostile-template corpus (tests/security/data/*.jsonl) and the checks its tests share.

Data files, one JSON object a line, each citing where it comes from (`origin`):
- jinja_ssti.jsonl: tenant Jinja that tries to reach Python internals or run a command;
- velocity_ssti.jsonl: Velocity sources that try the same through the converter
  (`expect`: "security" = TemplateSecurityError, "safe" = any TemplateRenderError or a harmless
  answer);
- runaway.jsonl: templates that burn CPU or memory (`expect`: "limit" = TemplateLimitError;
  "limit_or_refused" = a construct the environment may not offer at all (a str method, a
  global): TemplateLimitError, or any TemplateRenderError refusing it; "limit_or_answer" = a
  regular expression the engine may match without backtracking: TemplateLimitError or a
  normal answer (within the guard); "refused" = a template
  nested too deeply to compile: TemplateLimitError or TemplateSyntaxError).

`@MARKER@` in a payload (or its data) stands for a file path: a payload that manages to run a
command or write a file creates it, so its existence proves an escape.

Data values can be written compactly: {"$repeat": "a", "$times": 30, "$suffix": "!"} is
"a" * 30 + "!", {"$nest": 100000} is a list nested 100000 deep.

No Django here: tests/security/hostile.py (used outside pytest too) reads the corpus as well.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"
MARKER = "@MARKER@"

# What every payload renders with (a payload's own `data` is merged over it). Values that look
# like Python internals' names stand in for the `request.args` of the public payloads.
DEFAULT_DATA: dict[str, Any] = {
    "name": "Ada",
    "x": "v",
    "s": "abc",
    "n": 7,
    "items": [1, 2, 3],
    "obj": {"a": 1, "b": "two"},
    "cmd": "touch @MARKER@",
}

# Text no rendering may ever show: reprs of Python internals, and command/file output.
TELLTALE_SUBSTRINGS = (
    "<class",
    "<module",
    "<function",
    "<built-in function",
    "<frame",
    "<code object",
    "__globals__",
    "subprocess",
    "root:x:0:0",
)
TELLTALE_PATTERNS = (re.compile(r"\bos\.\w"),)
# In error messages a refused name may be quoted (`'__globals__' is not allowed`): only reprs of
# objects and secrets count there.
ERROR_TELLTALE_SUBSTRINGS = ("<class", "<module", "<function", "<built-in function", "<frame")
# A method's or an iterator's repr: the memory address of an object. Tenant Jinja never shows
# one; converted Velocity prints airspeed's repr of a bound method, address included
# (docs/templates.md, known limits), so its checks leave these out.
ADDRESS_TELLTALES = ("<built-in method", " at 0x")


@dataclass(frozen=True)
class Payload:
    id: str
    group: str
    origin: str
    source: str
    data: dict[str, Any] = field(default_factory=dict)
    expect: str = ""

    def source_for(self, marker: str | Path) -> str:
        return self.source.replace(MARKER, str(marker))

    def data_for(self, marker: str | Path) -> dict[str, Any]:
        return build_data({**DEFAULT_DATA, **self.data}, marker)


@dataclass(frozen=True)
class Runaway:
    id: str
    form: str  # "jinja" (tenant Jinja) | "velocity" (Velocity source, converted)
    source: str
    expect: str
    origin: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def env(self) -> str:
        return "jinja2" if self.form == "jinja" else "velocity"

    @property
    def nested_data(self) -> bool:
        return '"$nest"' in json.dumps(self.data)

    def data_for(self) -> dict[str, Any]:
        return build_data(self.data, "")


def _read(name: str) -> list[dict[str, Any]]:
    path = DATA_DIR / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def jinja_payloads() -> list[Payload]:
    return [Payload(**row) for row in _read("jinja_ssti.jsonl")]


def velocity_payloads() -> list[Payload]:
    return [Payload(**row) for row in _read("velocity_ssti.jsonl")]


def runaway_cases() -> list[Runaway]:
    return [Runaway(**row) for row in _read("runaway.jsonl")]


def build_data(value: Any, marker: str | Path) -> Any:
    """Expands the compact notation and puts the marker path in place of `@MARKER@`."""
    if isinstance(value, str):
        return value.replace(MARKER, str(marker))
    if isinstance(value, list):
        return [build_data(item, marker) for item in value]
    if isinstance(value, dict):
        if "$repeat" in value:
            return value["$repeat"] * value["$times"] + value.get("$suffix", "")
        if "$nest" in value:
            nested: list[Any] = []
            for _ in range(value["$nest"] - 1):
                nested = [nested]
            return nested
        return {key: build_data(item, marker) for key, item in value.items()}
    return value


def telltales(text: str, secrets: Iterable[str], addresses: bool = True) -> list[str]:
    """The tell-tales of internals or secrets in rendered output (HTML-escaped or not);
    `addresses`: memory addresses count too."""
    substrings = TELLTALE_SUBSTRINGS + (ADDRESS_TELLTALES if addresses else ())
    found = []
    for variant in {text, html.unescape(text)}:
        found += [t for t in substrings if t in variant]
        found += [p.pattern for p in TELLTALE_PATTERNS if p.search(variant)]
        found += ["a secret value" for s in secrets if s and s in variant]
    return sorted(set(found))


def error_telltales(message: str, secrets: Iterable[str], addresses: bool = True) -> list[str]:
    """Reprs of internals or secrets in an error message."""
    substrings = ERROR_TELLTALE_SUBSTRINGS + (ADDRESS_TELLTALES if addresses else ())
    found = [t for t in substrings if t in message]
    found += ["a secret value" for s in secrets if s and s in message]
    return found
