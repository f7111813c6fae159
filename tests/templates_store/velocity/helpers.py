"""Shared helpers for the Velocity conversion tests (pure Python, no Django)."""

from __future__ import annotations

import json
import re
from typing import Any

from templates_store.velocity import Engine, convert
from templates_store.velocity.bench_render import legacy_data_dir
from templates_store.velocity.legacy_render import LegacyRenderer
from templates_store.velocity.verifier import LegacyRenderError, render_legacy

LEGACY_DATA = legacy_data_dir()
ENGINE = Engine(autoescape=False)
# airspeed runs in its sandboxed process, as in production; one for all the tests' renders
LEGACY = LegacyRenderer()
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def load_jsonl(name: str) -> list[dict[str, Any]]:
    with open(LEGACY_DATA / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def outcome_legacy(source: str, params: dict[str, Any]) -> tuple[str, str | None]:
    try:
        return "ok", render_legacy(source, params, LEGACY)
    except LegacyRenderError:  # any airspeed failure is the gateway's 50000
        return "error", None


def outcome_converted(source: str, params: dict[str, Any]) -> tuple[str, str | None]:
    conversion = convert(source)
    try:
        return "ok", ENGINE.render(conversion.source, params)
    except Exception:  # noqa: BLE001
        return "error", None


def normalise(outcome: tuple[str, str | None]) -> tuple[str, str | None]:
    # bound-method reprs carry memory addresses that differ between any two runs: only the
    # address is masked, a text with an address still differs from one without
    kind, text = outcome
    return kind, None if text is None else _ADDRESS.sub(" at 0x?", text)


_JINJA_ONLY: dict[int, Engine] = {}


def jinja_only(engine: Engine) -> Engine:
    """An engine like `engine` (same limits) with the fast path off: renders through Jinja."""
    twin = _JINJA_ONLY.get(id(engine))
    if twin is None:
        twin = _JINJA_ONLY[id(engine)] = Engine(
            autoescape=engine.autoescape, limits=engine.limits, fast_path=False
        )
    return twin


# Legacy templates that never end or explode: a limit must stop each of them.
RUNAWAY_VELOCITY = [
    "#foreach($i in [1..1000000000])x#end",
    "#foreach($i in [1..5000])#foreach($j in [1..5000])#end#end",
    "#foreach($i in $l)$l.add($i)#end",
    "#set($s = 'xy')#foreach($i in [1..64])#set($s = \"$s$s\")#end",
    "#set($s = 'xy')#foreach($i in [1..64])#set($s = $s + $s)#end",
    "$s.center(1000000000)",
    "#macro(r)#r()#end#r()",
]
