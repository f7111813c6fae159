"""Runaway templates (tests/security/data/runaway.jsonl): each is stopped by the render budget
with TemplateLimitError, having allocated little, in both environments where the construct
exists; compiling one evaluates nothing; through the API each is a 422
`template_limit_exceeded` (or a 400 when refused at creation).

Renders run in a child process watched by a 20 s wall-clock guard: a guard against hangs only,
never a speed assertion (speed is `make bench`'s business). Memory is tracemalloc's peak.
"""

from __future__ import annotations

import pytest
import requests

from tests.security.checks import PEAK_BYTES, assert_api_error, assert_ended
from tests.security.corpus import runaway_cases
from tests.security.hostile import CLIENT_TIMEOUT, json_body
from tests.security.isolation import Job, Outcome, run_isolated

CASES = runaway_cases()
IDS = [case.id for case in CASES]

API_CODES = {
    "limit": {"template_limit_exceeded"},
    "limit_or_refused": {"template_limit_exceeded", "template_security_error", "render_error"},
    "refused": {"template_limit_exceeded", "render_error"},
}
# (a regular expression the regex engine matches without backtracking ends in an answer)
ANSWER_ALLOWED = {"limit_or_answer"}


def _job(case, **options) -> Job:  # noqa: ANN001
    return Job(
        source=case.source,
        data=case.data_for(),
        env=case.env,
        velocity_source=case.form == "velocity",
        measure_memory=True,
        **options,
    )


def assert_stopped(outcome: Outcome, expect: str) -> None:
    assert_ended(outcome)
    if outcome.status == "unconverted":
        return  # the converter refused the Velocity source: nothing was rendered
    if expect in ANSWER_ALLOWED and outcome.status == "returned":
        return  # a normal answer within the guard (the budget's error is the other outcome)
    assert outcome.status == "raised", "not stopped: " + outcome.describe()
    if expect in ("limit", "limit_or_answer"):
        assert outcome.limit_error, "not a TemplateLimitError: " + outcome.describe()
    elif expect == "limit_or_refused":
        # (a method or global the environment does not offer is refused: any engine error)
        assert outcome.render_error, "an error outside the contract: " + outcome.describe()
    else:
        assert outcome.limit_error or outcome.syntax_error, (
            "neither a TemplateLimitError nor a TemplateSyntaxError: " + outcome.describe()
        )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_runaway_template__rendered__stopped_by_its_budget(case):
    # Given a template that would burn CPU or memory
    job = _job(case)
    # When it is rendered (in a child process, under a guard against hangs)
    outcome = run_isolated(job)
    # Then the budget stops it with its own error
    assert_stopped(outcome, case.expect)
    # And it never held much memory on the way
    assert outcome.peak_bytes < PEAK_BYTES, outcome.describe()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_runaway_template__compiled__evaluates_nothing(case):
    # Given a runaway template, its constant parts included
    job = _job(case, compile_only=True)
    # When it is only compiled (what creating a template does)
    outcome = run_isolated(job)
    # Then nothing of it ran: compiling allocates little and fails only with the engine's error
    assert_ended(outcome)
    assert outcome.status in ("returned", "unconverted") or outcome.render_error, outcome.describe()
    assert outcome.peak_bytes < PEAK_BYTES, outcome.describe()


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_runaway_template__through_the_api__422_limit_or_400(case, hostile_server, hostile_api_key):
    # Given a tenant's runaway template, created through the API of a real server
    headers = {"Authorization": f"Bearer {hostile_api_key}", "Content-Type": "application/json"}
    # (a Velocity source is sent as it is: the platform converts it)
    body = case.source
    created = requests.post(
        f"{hostile_server.base_url}/v2/templates",
        data=json_body(
            {"key": "runaway", "channel": "sms", "subject": "", "body": body, "engine": case.env},
            "",
        ),
        headers=headers,
        timeout=CLIENT_TIMEOUT,
    )
    if created.status_code == 400:
        # (refused at creation, in the API's format)
        assert_api_error(created, {"validation_error"})
        return
    assert created.status_code == 201, created.text
    # When it is rendered
    rendered = requests.post(
        f"{hostile_server.base_url}/v2/templates/runaway/render",
        data=json_body({"data": case.data, "version": 1}, ""),
        headers=headers,
        timeout=CLIENT_TIMEOUT,
    )
    # Then the answer is the budget's own error (data too deep to parse is refused up front)
    if case.nested_data and rendered.status_code == 400:
        assert_api_error(rendered, {"parse_error", "validation_error"})
        return
    if case.expect in ANSWER_ALLOWED and rendered.status_code == 200:
        return
    assert rendered.status_code == 422, rendered.text[:500]
    assert_api_error(rendered, API_CODES.get(case.expect, API_CODES["limit"]))
