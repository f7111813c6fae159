"""Assertions the security tests share (what "refused" and "harmless" mean)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tests.security.corpus import error_telltales, telltales
from tests.security.isolation import Outcome

# Per render: what tracemalloc may see allocated at the peak (an output at the limit is a few MB).
PEAK_BYTES = 64 * 2**20

API_RENDER_ERROR_CODES = frozenset(
    {"template_security_error", "template_limit_exceeded", "render_error"}
)


def assert_ended(outcome: Outcome) -> None:
    """The render ended by itself, inside the guard, without running Python out of memory."""
    assert outcome.status not in ("timeout", "crashed"), outcome.describe()
    assert not outcome.memory_error, "hit the address-space cap: " + outcome.describe()


def assert_refused_or_harmless(
    outcome: Outcome, secrets: Iterable[str], addresses: bool = True
) -> None:
    """Ended in a TemplateRenderError subclass, or in a normal answer that shows nothing of
    Python's internals or of the platform's secrets (nor, with `addresses`, any memory
    address)."""
    assert_ended(outcome)
    if outcome.status == "raised":
        assert outcome.render_error, "an error outside the contract: " + outcome.describe()
        found = error_telltales(outcome.error_message, secrets, addresses)
        assert found == [], outcome.describe()
    elif outcome.status == "returned":
        assert telltales(outcome.text or "", secrets, addresses) == [], outcome.describe()
        assert outcome.length <= outcome.max_output_chars, outcome.describe()


def assert_security_error(outcome: Outcome) -> None:
    assert_ended(outcome)
    assert outcome.status in ("raised", "unconverted"), "not refused: " + outcome.describe()
    if outcome.status == "raised":
        assert outcome.security_error, "not a TemplateSecurityError: " + outcome.describe()


def assert_render_error(outcome: Outcome) -> None:
    assert_ended(outcome)
    assert outcome.status in ("raised", "unconverted"), "not refused: " + outcome.describe()
    if outcome.status == "raised":
        assert outcome.render_error, "an error outside the contract: " + outcome.describe()


def assert_no_marker(marker: Path) -> None:
    assert not marker.exists(), f"a payload ran code: {marker} was created"


def assert_api_error(response, codes: Iterable[str]) -> None:  # noqa: ANN001
    """A 4xx in the API's own format, with one of `codes`."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    assert body["error"]["code"] in set(codes), body
