"""One Engine per autoescape setting, shared by the process (compiled templates are cached)."""

from functools import cache

from templates_store.velocity.engine import Engine


@cache
def get_engine(autoescape: bool) -> Engine:
    return Engine(autoescape=autoescape)
