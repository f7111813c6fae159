"""Side-by-side check of a legacy Velocity template and its Jinja conversion.

The legacy side renders exactly as the old gateway's `Renderer.render`:
`airspeed.Template(source).merge(copy.deepcopy(params))`, "" for an empty source.  Any
exception on a side is that gateway's `50000 system error`; errors on both sides are equal.
"""

from __future__ import annotations

import copy
import difflib
import threading
from dataclasses import dataclass
from typing import Any

import airspeed

from .converter import Conversion, convert
from .engine import Engine

__all__ = ["Difference", "Outcome", "render_legacy", "render_converted", "verify"]

_legacy_cache: dict[str, Any] = {}
_legacy_lock = threading.Lock()
_engine = Engine(autoescape=False)


@dataclass(frozen=True)
class Outcome:
    """What one engine produced: the text, or the error (`output` is None then)."""

    output: str | None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class Difference:
    case_index: int
    params: dict[str, Any]
    legacy: Outcome
    converted: Outcome
    diff: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_index": self.case_index,
            "params": self.params,
            "legacy_output": self.legacy.output,
            "legacy_error": self.legacy.error,
            "converted_output": self.converted.output,
            "converted_error": self.converted.error,
            "diff": self.diff,
        }


def render_legacy(source: str, params: dict[str, Any]) -> str:
    """Render like the legacy gateway (raises whatever airspeed raises)."""
    if source == "":
        return ""
    with _legacy_lock:
        template = _legacy_cache.get(source)
    if template is None:
        template = airspeed.Template(source)
        template.ensure_compiled()
        with _legacy_lock:
            _legacy_cache[source] = template
    return template.merge(copy.deepcopy(params))


def render_converted(
    jinja_source: str, params: dict[str, Any], engine: Engine | None = None
) -> str:
    return (engine or _engine).render(jinja_source, params)


def _outcome(func: Any, *args: Any) -> Outcome:
    try:
        return Outcome(func(*args))
    except Exception as exc:  # noqa: BLE001 - any failure is the gateway's system error
        return Outcome(None, f"{type(exc).__name__}: {exc}")


def verify(
    velocity_source: str,
    jinja_source_or_conversion: str | Conversion | None,
    cases: list[dict[str, Any]],
    engine: Engine | None = None,
) -> list[Difference]:
    """Render every case on both engines; return the cases whose outcomes differ.

    `jinja_source_or_conversion` may be None: the Velocity source is converted here.
    """
    if jinja_source_or_conversion is None:
        jinja_source_or_conversion = convert(velocity_source)
    if isinstance(jinja_source_or_conversion, Conversion):
        jinja_source = jinja_source_or_conversion.source
    else:
        jinja_source = jinja_source_or_conversion
    differences = []
    for index, params in enumerate(cases):
        legacy = _outcome(render_legacy, velocity_source, params)
        if jinja_source is None:
            converted = Outcome(None, "not converted")
        else:
            converted = _outcome(render_converted, jinja_source, params, engine)
        if legacy.failed and converted.failed:
            continue
        if legacy.output == converted.output and not legacy.failed and not converted.failed:
            continue
        left = legacy.output if legacy.output is not None else f"<error: {legacy.error}>"
        right = converted.output if converted.output is not None else f"<error: {converted.error}>"
        diff = "".join(
            difflib.unified_diff(
                left.splitlines(keepends=True),
                right.splitlines(keepends=True),
                fromfile="legacy (airspeed)",
                tofile="converted (jinja)",
            )
        )
        differences.append(Difference(index, params, legacy, converted, diff))
    return differences
