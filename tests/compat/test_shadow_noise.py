"""Noise (a part that differs between two renderings on the same side) is told apart from a
regression, as Diffy does."""

import pytest

from compat import shadow
from notify.rollout.models import IgnoreRule, ShadowComparison

State = ShadowComparison.State


@pytest.mark.parametrize(
    ("legacy", "first", "second", "noise"),
    [
        # a timestamp differs on the platform's side: the legacy value differs only there
        (
            "sent at 12:00:01, code 1234",
            "sent at 12:00:07, code 1234",
            "sent at 12:00:09, code 1234",
            True,
        ),
        # the same, but the legacy side also differs elsewhere: a regression
        (
            "sent at 12:00:01, code 9999",
            "sent at 12:00:07, code 1234",
            "sent at 12:00:09, code 1234",
            False,
        ),
        # noise at the start and the end
        ("a1 middle z9", "b2 middle y8", "c3 middle x7", True),
        ("a1 middle! z9", "b2 middle y8", "c3 middle x7", False),
        # no noise: equal texts only
        ("same", "same", "same", True),
        ("other", "same", "same", False),
    ],
)
def test_matches_but_noise__cases(legacy, first, second, noise):
    assert shadow.matches_but_noise(legacy, first, second) is noise


def test_result__noisy_field__reported_as_noise_not_mismatch():
    result = shadow._Result([])
    result.field("content", "1", "token abc123 ok", "token zzz999 ok", "token qqq111 ok")
    assert result.state == State.NOISE
    assert result.noise[0]["field"] == "content" and not result.differences


def test_result__difference_outside_the_noise__mismatch_shown_with_both_sides():
    result = shadow._Result([])
    result.field("content", "1", "token abc123 ok", "token zzz999 OK", "token qqq111 OK")
    assert result.state == State.MISMATCH
    assert result.differences[0]["legacy"] == "token abc123 ok"


def test_result__ignore_rule__difference_accepted_and_kept_apart():
    rule = IgnoreRule(pk=7, field="subject", pattern=r"\s+$", reason="trailing blanks")
    result = shadow._Result([rule])
    result.field("subject", "1", "Hello  ", "Hello", "Hello")
    result.field("content", "1", "a", "a", "a")
    assert result.state == State.IGNORED and result.ignored[0]["rule"] == 7


def test_matches_but_noise__huge_noisy_text__bounded_and_refused():
    text = "x " * (shadow.MAX_NOISE_TOKENS + 1)
    assert shadow.matches_but_noise(text, text, text + "y") is False
