"""One engine per template kind and autoescape setting, shared by the process (compiled
templates are cached).

- `jinja2`: tenant-authored Jinja (TenantEngine): Jinja's own filters, allowlisted and bounded.
- `velocity`: templates converted from legacy Velocity (the converter's output) rendered with
  the legacy helpers (velocity.engine.Engine).
A version records which one renders it; nothing a tenant writes can name a helper of the other.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings

from templates_store.sandbox.engine import BaseEngine, TenantEngine
from templates_store.velocity.converter import use_check_engine
from templates_store.velocity.engine import Engine as ConvertedEngine

JINJA2 = "jinja2"
VELOCITY = "velocity"
ENGINE_KINDS = (JINJA2, VELOCITY)


def get_engine(kind: str, autoescape: bool = False) -> BaseEngine:
    """The process's engine for a template kind; converted templates never escape."""
    return _engine(kind, autoescape and kind == JINJA2)


@cache
def _engine(kind: str, autoescape: bool) -> BaseEngine:
    if kind == JINJA2:
        return TenantEngine(autoescape=autoescape)
    if kind == VELOCITY:
        engine = ConvertedEngine(
            autoescape=False, fast_path=getattr(settings, "TEMPLATE_FAST_PATH", None)
        )
        use_check_engine(engine)
        return engine
    raise ValueError(f"unknown template engine {kind!r}")
