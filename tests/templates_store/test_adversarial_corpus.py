"""A corpus of 656 templates written the way tenants wrote them (and torture tests of every
airspeed quirk), found by adversarial testing. Each row's outcome is pinned in
data/adversarial_expected.json (see adversarial_pins.py): its conversion status and, per case,
whether both engines rendered the same text, both failed, or (needs_review only) differed.
A row must never get worse than its pin, on either engine (fast path on and off), and a row
that is not needs_review never differs from airspeed."""

from __future__ import annotations

import warnings

import pytest

from templates_store.velocity.converter import EXACT, NEEDS_REVIEW
from templates_store.velocity.verifier import Outcome

from .adversarial_pins import (
    BOTH_FAILED,
    COMMAND,
    EQUAL,
    ROWS,
    SAME_BUT_ADDRESS,
    compare,
    evaluate,
    load_pins,
    row_sha,
)

PINS = load_pins()


def _shown(outcome: Outcome) -> str:
    return repr(outcome.output) if outcome.output is not None else f"<error: {outcome.error}>"


def test_pins__corpus__one_pin_per_row_of_the_same_text() -> None:
    # Given the corpus and its pins
    # When matched row by row
    stale = [p["row"] for i, p in enumerate(PINS) if p["row"] != i or p["sha"] != row_sha(i)]
    # Then every row has its pin, made from its current text
    assert len(PINS) == len(ROWS), f"{len(PINS)} pins for {len(ROWS)} rows: {COMMAND}"
    assert stale == [], f"rows changed since pinned: {stale[:10]}: {COMMAND}"


@pytest.mark.parametrize("index", range(len(ROWS)), ids=[f"corpus{i}" for i in range(len(ROWS))])
def test_corpus_row__both_engines__no_worse_than_pinned(index: int, converted_engine) -> None:  # noqa: ANN001
    # Given a corpus row and its pinned outcome
    pin = PINS[index]
    assert pin["sha"] == row_sha(index), f"row changed since pinned: {COMMAND}"
    # When converted and rendered on airspeed and on our engine, case by case
    result = evaluate(index, converted_engine)
    worse, better = compare(pin, result.status, result.codes)
    # Then a row that is not needs_review never differs (exact: not even by an address)
    allowed = {EQUAL, BOTH_FAILED} | ({SAME_BUT_ADDRESS} if result.status != EXACT else set())
    if result.status != NEEDS_REVIEW:
        worse += [
            f"case {case}: {code} in a row converted {result.status}"
            for case, code in enumerate(result.codes)
            if code not in allowed
        ]
    # And nothing is worse than pinned; improvements are reported for the pins to follow
    if better:
        warnings.warn(f"corpus{index} improved ({'; '.join(better)}): {COMMAND}", stacklevel=1)
    details = [
        f"case {case}: legacy {_shown(legacy)} / ours {_shown(ours)}"
        for case, (legacy, ours) in enumerate(zip(result.legacy, result.ours, strict=True))
        if case >= len(pin["cases"]) or result.codes[case] != pin["cases"][case]
    ]
    assert not worse, "\n".join(worse + details)


@pytest.mark.parametrize(
    ("pinned_status", "pinned", "status", "codes", "worse", "better"),
    [
        ("exact", "=x", "exact", "=x", 0, 0),
        ("exact", "=x", "exact_with_warnings", "=x", 1, 0),  # status rank up
        ("exact_with_warnings", "==", "needs_review", "==", 1, 0),
        ("exact", "==", "exact", "=L", 2, 0),  # rendered, now fails (and one equal fewer)
        ("exact", "==", "exact", "=d", 2, 0),  # now differs
        ("exact", "=x", "exact", "=O", 1, 0),  # failed on both sides, now ours renders
        ("needs_review", "L", "needs_review", "d", 1, 0),  # failed, now differs
        ("needs_review", "d", "needs_review", "L", 1, 0),  # differed, now fails
        ("needs_review", "=L", "exact", "==", 0, 2),  # better status, one more equal
        ("exact_with_warnings", "~", "exact_with_warnings", "=", 0, 1),
        ("needs_review", "Lx", "needs_review", "=x", 0, 1),
        ("exact", "==", "exact", "===", 1, 0),  # cases added to the row: not comparable
    ],
)
def test_compare__changed_row__regressions_and_improvements_counted(
    pinned_status: str, pinned: str, status: str, codes: str, worse: int, better: int
) -> None:
    # Given a row's pin and its outcome now
    pin = {
        "status": pinned_status,
        "cases": pinned,
        "equal_output": pinned.count(EQUAL),
        "both_failed": pinned.count(BOTH_FAILED),
    }
    # When compared
    regressions, improvements = compare(pin, status, codes)
    # Then each worse change is a regression and each better one an improvement
    assert (len(regressions), len(improvements)) == (worse, better), (regressions, improvements)
