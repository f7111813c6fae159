from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from templates_store.velocity.engine import Engine
from templates_store.velocity.legacy_render import LegacyRenderer

LEGACY_DATA = Path(settings.LEGACY_DATA_DIR)


@pytest.fixture(scope="session", params=[True, False], ids=["fast", "jinja"])
def converted_engine(request) -> Engine:  # noqa: ANN001
    """The converted-template engine with the fast path on, then off (Jinja only): parity
    tests run both ways, so a bug in either path shows."""
    engine = Engine(autoescape=False, fast_path=request.param)
    assert engine.fast_path is request.param
    return engine


@pytest.fixture(scope="session")
def legacy_renderer() -> Iterator[LegacyRenderer]:
    """One sandboxed airspeed process for the tests' own (trusted) templates."""
    with LegacyRenderer() as renderer:
        yield renderer
