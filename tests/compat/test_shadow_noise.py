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


@pytest.mark.parametrize(
    ("legacy", "first", "second"),
    [
        # a code slot is digits of about that length: words in its place are a regression
        (
            "your code is GARBAGE, valid 5 min",
            "your code is 123456, valid 5 min",
            "your code is 654321, valid 5 min",
        ),
        # an emptied slot is no noise either
        (
            "your code is , valid 5 min",
            "your code is 123456, valid 5 min",
            "your code is 654321, valid 5 min",
        ),
        # nor text added around the slot
        (
            "your code is 111111 (resent), valid 5 min",
            "your code is 123456, valid 5 min",
            "your code is 654321, valid 5 min",
        ),
    ],
)
def test_matches_but_noise__slot_filled_with_something_else__not_noise(legacy, first, second):
    assert shadow.matches_but_noise(legacy, first, second) is False


def test_compare__platform_side_fails__tried_again_then_given_up(db, settings, monkeypatch):
    from compat import native
    from notify.tenants.models import Tenant

    settings.SHADOW_RETRY_DELAYS = [0, 0]
    tenant = Tenant.objects.create(slug="t", name="T", app_key="ak_t")
    comparison = ShadowComparison.all_tenants.create(
        tenant=tenant, endpoint="/gateway/sms/send.do", legacy_code=0, legacy_msg_ids=["1"]
    )

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("template store down")

    monkeypatch.setattr(native, "dry_run", broken)
    for _ in range(3):
        assert shadow.compare(comparison.pk) is None
    comparison.refresh_from_db()
    assert comparison.state == State.UNREADABLE and "template store down" in comparison.last_error
