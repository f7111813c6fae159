"""A real server process under hostile traffic: every create/render/convert of the corpus and of
the runaway templates, and 200 kB hostile conversions, through HTTP (tests/security/hostile.py).
Each ends in the budget's own clear error or a normal answer - never a 500, never a dropped
connection - and the server's peak resident memory stays under 256 MB."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.security.checks import assert_no_marker
from tests.security.hostile import (
    ACCEPTED_STATUSES,
    HOSTILE_REQUESTS,
    NO_RESPONSE,
    NOT_SENT,
    TIMED_OUT,
    run_hostile_requests,
)

pytestmark = pytest.mark.e2e

SERVER_PEAK_RESIDENT_BYTES = 256 * 2**20
_NAMES = {NO_RESPONSE: "no response", TIMED_OUT: "timed out", NOT_SENT: "not sent (deadline)"}


def test_hostile_traffic__real_server__clear_answers_and_bounded_memory(
    hostile_server, hostile_api_key, marker
):
    # Given a running server and a tenant's API key
    # When every hostile request is sent (each with a generous client timeout: a hang guard)
    timings = run_hostile_requests(hostile_server.base_url, hostile_api_key, marker_path=marker)
    peak = hostile_server.resident_high_water_mark()
    slowest = max(timings, key=lambda timing: timing[2])
    statuses = Counter(_NAMES.get(status, status) for _, status, _ in timings)
    print(
        f"hostile requests: {len(timings)} {dict(statuses)}; "
        f"slowest: {slowest[0]} {slowest[2]:.2f}s; server VmHWM {peak / 2**20:.0f} MB"
    )
    # Then no payload ran a command
    assert_no_marker(marker)
    # And the server process never held more than 256 MB
    assert peak < SERVER_PEAK_RESIDENT_BYTES, f"server VmHWM {peak / 2**20:.0f} MB"
    # And every request was answered with a status the API documents (4xx in its own format)
    unexpected = [
        f"{name}: {_NAMES.get(status, status)} after {seconds:.1f}s"
        for name, status, seconds in timings
        if status not in ACCEPTED_STATUSES
    ]
    assert unexpected == [], (
        f"{len(unexpected)} of {len(timings)} requests:\n"
        + "\n".join(unexpected[:60])
        + f"\n--- server log\n{hostile_server.log_tail()}"
    )
    # And every hostile template reached the server
    assert len({name.rsplit(":", 1)[0] for name, _, _ in timings}) == len(HOSTILE_REQUESTS)
