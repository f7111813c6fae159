"""The process's engines follow the TEMPLATE_FAST_PATH setting (NOTIFY_TEMPLATE_FAST_PATH)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from templates_store import engines
from templates_store.velocity import convert

CONVERTED = convert("Hi $name, #foreach($i in $l)$i#end").source
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_engines():  # noqa: ANN201
    """get_engine builds its engines once per process: rebuild them for this test."""
    engines._engine.cache_clear()
    yield engines
    engines._engine.cache_clear()


@pytest.mark.parametrize(("setting", "has_fast"), [(True, True), (False, False)])
def test_velocity_engine__template_fast_path_setting__fast_path_follows_it(
    settings,  # noqa: ANN001
    fresh_engines,  # noqa: ANN001
    setting: bool,
    has_fast: bool,
) -> None:
    # Given the setting on or off
    settings.TEMPLATE_FAST_PATH = setting
    # When the process's converted-template engine compiles and renders a template
    engine = fresh_engines.get_engine(engines.VELOCITY)
    compiled = engine.compile(CONVERTED)
    # Then it has a fast path only when the setting is on, and renders the same either way
    assert engine.fast_path is setting
    assert (compiled.fast is not None) is has_fast
    assert engine.render(CONVERTED, {"name": "Ana", "l": [1, 2]}) == "Hi Ana, 12"


@pytest.mark.parametrize(
    ("value", "expected"), [("false", "None"), ("0", "None"), ("Off", "None"), ("", "fast")]
)
def test_environment_variable__notify_template_fast_path__reaches_get_engine(
    value: str, expected: str
) -> None:
    # Given NOTIFY_TEMPLATE_FAST_PATH in a fresh process's environment (unset: "")
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_TEMPLATE_FAST_PATH"}
    if value:
        env["NOTIFY_TEMPLATE_FAST_PATH"] = value
    env["DJANGO_SETTINGS_MODULE"] = "notify.settings"
    program = (
        "import django; django.setup()\n"
        "from templates_store.engines import get_engine\n"
        "from templates_store.velocity import convert\n"
        f"fast = get_engine('velocity').compile(convert({'Hi $name'!r}).source).fast\n"
        "print('None' if fast is None else 'fast')\n"
    )
    # When that process compiles a converted template with get_engine
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then the fast path is off for false/0, on by default
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
