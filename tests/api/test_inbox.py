"""The in-app inbox: a delivered in-app message is in its recipient's inbox, newest first, with
the unread count; read and unread marks; cursor pagination; another tenant sees none of it."""

from __future__ import annotations

import pytest

from notify.messaging import services
from notify.messaging.models import Message


@pytest.fixture
def send_inapp(api_client, django_capture_on_commit_callbacks, monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)

    def send(to: str, subject: str) -> str:
        answer = api_client.post(
            "/v2/messages",
            {"channel": "inapp", "to": to, "subject": subject, "body": f"{subject}!"},
            format="json",
        )
        assert answer.status_code == 202, answer.content
        message_id = answer.json()["id"]
        with django_capture_on_commit_callbacks(execute=True):
            services.deliver(message_id)
        return message_id

    return send


def test_inbox__delivered_message__listed_unread_then_marked_read(api_client, send_inapp):
    message_id = send_inapp("user-42", "Welcome")
    assert Message.all_tenants.get(pk=message_id).status == "delivered"
    page = api_client.get("/v2/inbox/user-42").json()
    assert page["unread_count"] == 1 and page["total"] == 1 and page["next_cursor"] is None
    (item,) = page["items"]
    assert (item["id"], item["subject"], item["body"], item["read"]) == (
        message_id,
        "Welcome",
        "Welcome!",
        False,
    )
    marked = api_client.patch(f"/v2/inbox/user-42/{message_id}", {"read": True}, format="json")
    assert marked.status_code == 200 and marked.json()["read"] is True
    assert api_client.get("/v2/inbox/user-42").json()["unread_count"] == 0
    assert api_client.get("/v2/inbox/user-42?unread=true").json()["items"] == []
    api_client.patch(f"/v2/inbox/user-42/{message_id}", {"read": False}, format="json")
    assert api_client.get("/v2/inbox/user-42").json()["unread_count"] == 1
    # other recipients' inboxes are their own
    assert api_client.get("/v2/inbox/user-43").json()["total"] == 0


def test_inbox__many_messages__cursor_pages_newest_first_each_once(api_client, send_inapp):
    sent = [send_inapp("user-7", f"n{n}") for n in range(25)]
    seen, cursor = [], ""
    while True:
        page = api_client.get(f"/v2/inbox/user-7?limit=10&cursor={cursor}").json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(sent))
    read_all = api_client.post("/v2/inbox/user-7/read-all")
    assert read_all.json() == {"marked_read": 25}
    assert api_client.get("/v2/inbox/user-7").json()["unread_count"] == 0


def test_inbox__bad_cursor_or_recipient__400_in_the_api_format(api_client):
    answer = api_client.get("/v2/inbox/user-7?cursor=not-ours")
    assert answer.status_code == 400 and "cursor" in answer.json()["error"]["fields"]
    assert api_client.get("/v2/inbox/user%207").status_code == 400


def test_inbox__another_tenant__sees_nothing_and_cannot_mark(
    api_client, other_tenant_client, send_inapp
):
    message_id = send_inapp("user-42", "Welcome")
    assert other_tenant_client.get("/v2/inbox/user-42").json()["total"] == 0
    answer = other_tenant_client.patch(
        f"/v2/inbox/user-42/{message_id}", {"read": True}, format="json"
    )
    assert answer.status_code == 404
    assert other_tenant_client.post("/v2/inbox/user-42/read-all").json() == {"marked_read": 0}
    assert api_client.get("/v2/inbox/user-42").json()["unread_count"] == 1


def test_inbox__recipient_with_a_slash__400_at_send_never_unreadable(api_client):
    answer = api_client.post(
        "/v2/messages",
        {"channel": "inapp", "to": "team/alice", "subject": "Hi", "body": "b"},
        format="json",
    )
    assert answer.status_code == 400 and "to" in answer.json()["error"]["fields"]


@pytest.mark.parametrize("message_id", ["%00", "26120503%00", "not-an-id", "9" * 40])
def test_inbox__mark_with_an_id_that_cannot_exist__404_in_the_api_format(api_client, message_id):
    # When a message id no message can have is marked read
    answer = api_client.patch(f"/v2/inbox/user-7/{message_id}", {"read": True}, format="json")
    # Then it is not found, in the API's format (a NUL was a database error, answered 500)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
