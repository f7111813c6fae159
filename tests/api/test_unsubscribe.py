"""One-click unsubscribe (RFC 8058) for bulk email: a batch's email carries List-Unsubscribe
and List-Unsubscribe-Post; a POST to its link opts the recipient out of that category, which
the next send honours; a GET, a forged or altered link change nothing."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client

from notify.messaging import services
from notify.messaging.models import Message, MessageStatus, Preference

PUBLIC_URL = "https://notify.example.com"


@pytest.fixture
def bulk_email(api_client, smtp_server, settings, monkeypatch, django_capture_on_commit_callbacks):  # noqa: ANN001, ANN201
    """Sends a batch of email (category `news`) and returns the mails the SMTP server got."""
    from notify.messaging import tasks

    settings.NOTIFY_PUBLIC_URL = PUBLIC_URL
    monkeypatch.setattr(tasks.deliver_bulk, "apply_async", lambda: None)

    def send(*recipients: str, **fields: object) -> list:
        with django_capture_on_commit_callbacks(execute=True):
            answer = api_client.post(
                "/v2/messages/batch",
                {
                    "channel": "email",
                    "subject": "Our news",
                    "body": "Hello",
                    "category": "news",
                    "recipients": [{"to": to} for to in recipients],
                    **fields,
                },
                format="json",
            )
        assert answer.status_code == 202, answer.content
        while services.deliver_bulk():
            pass
        return smtp_server.received

    return send


def unsubscribe_path(mail) -> str:  # noqa: ANN001
    header = str(mail.message["List-Unsubscribe"]).strip()
    assert header.startswith(f"<{PUBLIC_URL}/v2/unsubscribe/") and header.endswith(">")
    return urlsplit(header[1:-1]).path


def test_bulk_email__carries_one_click_unsubscribe_headers(bulk_email):
    (mail,) = bulk_email("ann@example.com")
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_path(mail)


def test_unsubscribe__one_click_post__opted_out_and_the_next_campaign_mail_suppressed(
    bulk_email, tenant
):
    # Given a campaign mail with its unsubscribe link
    (mail,) = bulk_email("ann@example.com")
    # When the mail client POSTs the one-click form (RFC 8058)
    answer = Client().post(
        unsubscribe_path(mail),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    # Then the recipient is opted out of that category
    assert answer.status_code == 200
    (row,) = Preference.all_tenants.filter(tenant=tenant)
    assert (row.recipient, row.category, row.opted_out) == ("ann@example.com", "news", True)
    # And the next campaign mail to them is not sent
    received = bulk_email("ann@example.com")
    assert len(received) == 1
    assert Message.all_tenants.filter(status=MessageStatus.SUPPRESSED).count() == 1


def test_unsubscribe__get__shows_a_page_and_changes_nothing(bulk_email):
    (mail,) = bulk_email("ann@example.com")
    page = Client().get(unsubscribe_path(mail))
    assert page.status_code == 200 and b'method="post"' in page.content
    assert not Preference.all_tenants.exists()


def test_unsubscribe__altered_token__404_json_nothing_changes(bulk_email):
    (mail,) = bulk_email("ann@example.com")
    path = unsubscribe_path(mail)
    altered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    for target in (altered, "/v2/unsubscribe/not-a-token", "/v2/unsubscribe/" + "x" * 3000):
        answer = Client().post(target, data="List-Unsubscribe=One-Click", content_type="text/plain")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert not Preference.all_tenants.exists()


def test_transactional_or_critical_email__no_unsubscribe_header(
    bulk_email, api_client, smtp_server, django_capture_on_commit_callbacks
):
    received = bulk_email("ann@example.com", critical=True)
    assert "List-Unsubscribe" not in received[-1].message
    with django_capture_on_commit_callbacks(execute=True):
        answer = api_client.post(
            "/v2/messages",
            {"channel": "email", "to": "bob@example.com", "subject": "Code", "body": "1234"},
            format="json",
        )
    services.deliver(answer.json()["id"])
    assert "List-Unsubscribe" not in smtp_server.received[-1].message


def test_bulk_email__no_public_url__no_header(bulk_email, settings):
    received = bulk_email("ann@example.com")
    settings.NOTIFY_PUBLIC_URL = ""
    received = bulk_email("bob@example.com")
    assert "List-Unsubscribe" not in received[-1].message
