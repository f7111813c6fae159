"""Side-by-side check of a legacy Velocity template and its Jinja conversion.

The legacy side renders exactly as the old gateway's `Renderer.render`:
`airspeed.Template(source).merge(copy.deepcopy(params))`, "" for an empty source, but in a
child process with limits (legacy_render.py).  Any exception on a side is that gateway's
`50000 system error`; errors on both sides are equal.  A legacy render that exceeded a limit
is always a difference (what airspeed would have given is unknown).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from .converter import Conversion, convert
from .engine import Engine
from .legacy_render import LegacyRenderer, LegacyRenderError

__all__ = [
    "Difference",
    "LegacyRenderError",
    "Outcome",
    "render_legacy",
    "render_converted",
    "verify",
]

_engine = Engine(autoescape=False)


@dataclass(frozen=True)
class Outcome:
    """What one engine produced: the text, or the error (`output` is None then)."""

    output: str | None
    error: str | None = None
    # the legacy render exceeded this limit (`error` says so): never equal to anything
    limit: str | None = None

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


def render_legacy(source: str, params: dict[str, Any], legacy: LegacyRenderer | None = None) -> str:
    """Render like the legacy gateway, in `legacy`'s child process (a new one by default).

    Raises LegacyRenderError with airspeed's error ("ClassName: message") or the limit the
    render exceeded.
    """
    if legacy is None:
        with LegacyRenderer() as renderer:
            outcome = renderer.render(source, params)
    else:
        outcome = legacy.render(source, params)
    if outcome.output is None:
        raise LegacyRenderError(outcome)
    return outcome.output


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
    legacy: LegacyRenderer | None = None,
) -> list[Difference]:
    """Render every case on both engines; return the cases whose outcomes differ.

    `jinja_source_or_conversion` may be None: the Velocity source is converted here.  The
    legacy renders run in `legacy`'s child process (by default a new one for this call).
    """
    if jinja_source_or_conversion is None:
        jinja_source_or_conversion = convert(velocity_source)
    if isinstance(jinja_source_or_conversion, Conversion):
        jinja_source = jinja_source_or_conversion.source
    else:
        jinja_source = jinja_source_or_conversion
    legacy_cases = [(velocity_source, params) for params in cases]
    if legacy is None:
        with LegacyRenderer() as renderer:
            legacy_outcomes = renderer.render_many(legacy_cases)
    else:
        legacy_outcomes = legacy.render_many(legacy_cases)
    differences = []
    for index, (params, rendered) in enumerate(zip(cases, legacy_outcomes, strict=True)):
        legacy_outcome = Outcome(rendered.output, rendered.error, rendered.limit)
        if jinja_source is None:
            converted = Outcome(None, "not converted")
        else:
            converted = _outcome(render_converted, jinja_source, params, engine)
        if legacy_outcome.failed and converted.failed and legacy_outcome.limit is None:
            continue
        if (
            legacy_outcome.output == converted.output
            and not legacy_outcome.failed
            and not converted.failed
        ):
            continue
        left = (
            legacy_outcome.output
            if legacy_outcome.output is not None
            else f"<error: {legacy_outcome.error}>"
        )
        right = converted.output if converted.output is not None else f"<error: {converted.error}>"
        diff = "".join(
            difflib.unified_diff(
                left.splitlines(keepends=True),
                right.splitlines(keepends=True),
                fromfile="legacy (airspeed)",
                tofile="converted (jinja)",
            )
        )
        differences.append(Difference(index, params, legacy_outcome, converted, diff))
    return differences
