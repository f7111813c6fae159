"""The channel registry: each channel declared once, and what the platform reads from it."""

import pytest

from notify.channels import registry
from notify.messaging.masking import mask_recipient
from notify.messaging.models import Message
from templates_store.models import Template


def test_registry__every_channel__once_and_the_models_offer_exactly_these():
    names = [spec.name for spec in registry.all_channels()]
    assert len(names) == len(set(names))
    assert Message._meta.get_field("channel").choices == registry.choices()
    assert Template._meta.get_field("channel").choices == registry.choices()


@pytest.mark.parametrize(
    ("alias", "channel"), [("mail", "email"), ("email", "email"), ("sms", "sms"), ("push", "push")]
)
def test_from_legacy__old_gateway_names__the_channel(alias, channel):
    assert registry.from_legacy(alias).name == channel


def test_from_legacy__unknown_name__refused():
    with pytest.raises(registry.UnknownChannel):
        registry.from_legacy("fax")


@pytest.mark.parametrize(
    ("channel", "given", "stored"),
    [
        ("email", " Ana@Example.COM ", "Ana@example.com"),
        ("sms", "13800138000", "+8613800138000"),
        ("sms", "+44 7911 123456", "+447911123456"),
        ("push", "  ExponentPushToken[abcdefgh] ", "ExponentPushToken[abcdefgh]"),
    ],
)
def test_normalise__valid_recipient__written_as_its_channel_sends_it(channel, given, stored):
    assert registry.get(channel).normalise(given) == stored


@pytest.mark.parametrize(
    ("channel", "given"),
    [
        ("email", "not-an-address"),
        ("email", "a@" + "b" * 260 + ".com"),
        ("sms", "12345"),
        ("sms", "call me maybe"),
        ("push", "short"),
        ("push", "has spaces in the middle"),
    ],
)
def test_normalise__invalid_recipient__refused_with_a_reason(channel, given):
    with pytest.raises(registry.InvalidRecipient) as refused:
        registry.get(channel).normalise(given)
    assert str(refused.value)


@pytest.mark.parametrize(
    ("channel", "recipient", "masked"),
    [
        ("email", "ana@example.com", "a***@example.com"),
        ("sms", "+8613800138000", "+86****8000"),
        ("push", "tok-123456789", "to***"),
        ("fax", "12345", "12***"),
    ],
)
def test_mask_recipient__each_channel__its_own_mask(channel, recipient, masked):
    assert mask_recipient(channel, recipient) == masked


def test_registry__each_provider_kind__listed_by_the_channels_it_carries():
    from notify.channels.providers import KINDS

    assert registry.sendable_names() == ["email", "sms", "push", "chat", "inapp"]
    for kind in KINDS.values():
        for channel in kind.channels:
            assert kind.name in registry.get(channel).transport_kinds, (kind.name, channel)
    assert registry.get("sms").transport_kinds == ("http", "aliyun", "twilio")
    assert registry.get("push").transport_kinds == ("http", "fcm", "webpush")


def test_api__sms_now_that_it_has_a_transport__202(api_client):
    response = api_client.post(
        "/v2/messages",
        {"channel": "sms", "to": "+8613800138000", "subject": "-", "body": "code 1234"},
        format="json",
    )
    assert response.status_code == 202


def test_api__channel_not_in_the_registry__400_on_channel(api_client):
    response = api_client.post(
        "/v2/messages",
        {"channel": "fax", "to": "+8613800138000", "subject": "S", "body": "code 1234"},
        format="json",
    )
    assert response.status_code == 400
    assert "channel" in response.json()["error"]["fields"]


def test_api__recipient_not_of_the_channel__400_on_to(api_client):
    response = api_client.post(
        "/v2/messages",
        {"channel": "email", "to": "+8613800138000", "subject": "S", "body": "B"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["to"] == ["Enter a valid email address."]
