"""Tenant-authored Jinja against the public SSTI corpus (tests/security/data/jinja_ssti.jsonl):
PayloadsAllTheThings' Jinja2 section, pallets/jinja's own sandbox tests, the issue's payloads and
the attack classes they use. Each payload, in the "jinja2" environment (autoescape off and on)
and through the API, is refused with the sandbox's error or renders something harmless; no
payload runs a command or writes a file (the marker)."""

from __future__ import annotations

import pytest

from templates_store.velocity.runtime import FILTERS
from tests.security.checks import (
    API_RENDER_ERROR_CODES,
    assert_api_error,
    assert_no_marker,
    assert_refused_or_harmless,
)
from tests.security.corpus import error_telltales, jinja_payloads, telltales
from tests.security.isolation import Job, run_isolated, run_isolated_each

PAYLOADS = jinja_payloads()
IDS = [payload.id for payload in PAYLOADS]


@pytest.mark.parametrize("helper", sorted(FILTERS))
def test_legacy_helper__tenant_engine__refused_at_compile(helper, marker):
    # Given a tenant template that calls a helper of converted templates
    source = "{{ ('touch @MARKER@'|" + helper + ") }}"
    job = Job(source=source.replace("@MARKER@", str(marker)), env="jinja2", compile_only=True)
    # When it is compiled in the tenant environment
    outcome = run_isolated(job)
    # Then the helper does not exist there: compiling fails with the engine's error
    assert_no_marker(marker)
    assert outcome.status == "raised" and outcome.stage == "compile", outcome.describe()
    assert outcome.render_error, "an error outside the contract: " + outcome.describe()


@pytest.mark.parametrize("payload", PAYLOADS, ids=IDS)
def test_ssti_payload__tenant_engine__refused_or_harmless(payload, marker, secrets):
    # Given a tenant template from the SSTI corpus, with autoescape off and on
    jobs = [
        Job(
            source=payload.source_for(marker),
            data=payload.data_for(marker),
            env="jinja2",
            autoescape=autoescape,
        )
        for autoescape in (False, True)
    ]
    # When it is compiled and rendered in the tenant environment
    outcomes = run_isolated_each(jobs)
    # Then no command ran, no file was written
    assert_no_marker(marker)
    # And each render is refused with the sandbox's error, or shows nothing of the internals
    for job, outcome in zip(jobs, outcomes, strict=True):
        try:
            assert_refused_or_harmless(outcome, secrets)
        except AssertionError as failure:
            raise AssertionError(f"autoescape={job.autoescape}: {failure}") from None


@pytest.mark.parametrize("payload", PAYLOADS, ids=IDS)
def test_ssti_payload__api_create_and_render__4xx_or_harmless(payload, api_client, marker, secrets):
    # Given a tenant that submits a template from the SSTI corpus
    created = api_client.post(
        "/v2/templates",
        {
            "key": "ssti",
            "channel": "sms",
            "subject": "",
            "body": payload.source_for(marker),
            "engine": "jinja2",
        },
        format="json",
    )
    # When it is accepted, and then rendered
    if created.status_code == 400:
        # (or refused when created, in the API's format)
        assert_no_marker(marker)
        assert_api_error(created, {"validation_error"})
        return
    assert_no_marker(marker)
    assert created.status_code == 201, created.content
    rendered = api_client.post(
        "/v2/templates/ssti/render", {"data": payload.data_for(marker)}, format="json"
    )
    # Then no command ran, no file was written
    assert_no_marker(marker)
    # And the render is refused in the API's format, or answers something harmless
    assert rendered.status_code in (200, 422), rendered.content
    if rendered.status_code == 422:
        assert_api_error(rendered, API_RENDER_ERROR_CODES)
        assert error_telltales(rendered.json()["error"]["message"], secrets) == []
    else:
        body = rendered.json()
        assert telltales(body["subject"] + body["body"], secrets) == [], body
