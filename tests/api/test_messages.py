import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from notify.messaging.models import Message, MessageEvent, MessageStatus, SendRequest

VALID_EMAIL = {"channel": "email", "to": "ana@example.com", "subject": "Hello", "body": "Hi Ana"}


def post_message(client, payload=None, **headers):  # noqa: ANN001, ANN201
    return client.post("/v2/messages", payload or VALID_EMAIL, format="json", **headers)


# --- authentication ---------------------------------------------------------------------------


def test_post_message__no_api_key__401_and_nothing_stored(anonymous_client, db):
    # When
    response = post_message(anonymous_client)
    # Then
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"
    assert Message.all_tenants.count() == 0


def test_post_message__unknown_api_key__401(anonymous_client, tenant):
    anonymous_client.credentials(HTTP_AUTHORIZATION="Bearer nk_thisisnotakey_0000000000000000")
    response = post_message(anonymous_client)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_post_message__wrong_scheme__401(anonymous_client, tenant_with_key):
    anonymous_client.credentials(HTTP_AUTHORIZATION=f"Token {tenant_with_key[1]}")
    assert post_message(anonymous_client).status_code == 401


def test_post_message__revoked_key__401(anonymous_client, revoked_key):
    anonymous_client.credentials(HTTP_AUTHORIZATION=f"Bearer {revoked_key}")
    response = post_message(anonymous_client)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_get_message__revoked_key__401(anonymous_client, revoked_key):
    anonymous_client.credentials(HTTP_AUTHORIZATION=f"Bearer {revoked_key}")
    assert anonymous_client.get("/v2/messages/261121000000500001").status_code == 401


def test_post_message__disabled_tenant__401(api_client, tenant):
    tenant.status = tenant.Status.DISABLED
    tenant.save()
    assert post_message(api_client).status_code == 401


# --- sending ----------------------------------------------------------------------------------


def test_post_message__valid_email__202_queued_and_delivery_queued_after_commit(
    api_client, tenant, django_capture_on_commit_callbacks, monkeypatch
):
    # Given
    queued: list[str] = []
    monkeypatch.setattr(
        "notify.messaging.services.enqueue_delivery", lambda mid, countdown=None: queued.append(mid)
    )
    # When
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_message(api_client)
        # Then: nothing is queued before the row is committed
        assert queued == []
    for callback in callbacks:
        callback()
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["channel"] == "email"
    assert body["to"] == "ana@example.com"
    assert len(body["id"]) == 18 and body["id"].isdigit()
    assert queued == [body["id"]]
    message = Message.all_tenants.get(pk=body["id"])
    assert message.tenant == tenant
    assert message.origin == "v2"
    assert [e.status for e in MessageEvent.objects.filter(message=message)] == ["queued"]


def test_post_message__html_only__accepted(api_client):
    payload = {"channel": "email", "to": "a@example.com", "subject": "S", "html": "<b>hi</b>"}
    response = post_message(api_client, payload)
    assert response.status_code == 202
    assert Message.all_tenants.get(pk=response.json()["id"]).html == "<b>hi</b>"


@pytest.mark.parametrize(
    ("payload", "bad_fields"),
    [
        ({}, {"channel", "to"}),
        ({"channel": "email", "to": "a@example.com", "body": "no subject"}, {"subject"}),
        ({**VALID_EMAIL, "to": "not-an-address"}, {"to"}),
        ({**VALID_EMAIL, "channel": "fax"}, {"channel"}),
        ({**VALID_EMAIL, "subject": ""}, {"subject"}),
        ({**VALID_EMAIL, "subject": "a\r\nBcc: victim@example.com"}, {"subject"}),
        ({**VALID_EMAIL, "body": "", "html": ""}, {"body"}),
        ({**VALID_EMAIL, "to": ["not-an-address"]}, {"to.0"}),
        ({**VALID_EMAIL, "body": "nul\x00byte"}, {"body"}),
        ({**VALID_EMAIL, "subject": "x" * 999}, {"subject"}),
    ],
)
def test_post_message__invalid_field__400_naming_each_field_and_nothing_stored(
    api_client, payload, bad_fields
):
    # When
    response = api_client.post("/v2/messages", payload, format="json")
    # Then
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == bad_fields
    assert Message.all_tenants.count() == 0


def test_post_message__malformed_json__400_in_api_format(api_client):
    response = api_client.post("/v2/messages", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_post_message__json_array_body__400(api_client):
    response = api_client.post("/v2/messages", [VALID_EMAIL], format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_post_message__same_idempotency_key_twice__one_message_same_answer(api_client):
    # When
    first = post_message(api_client, HTTP_IDEMPOTENCY_KEY="order-42")
    second = post_message(api_client, HTTP_IDEMPOTENCY_KEY="order-42")
    # Then
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert Message.all_tenants.count() == 1


def test_post_message__idempotency_key_reused_for_other_request__422(api_client):
    post_message(api_client, HTTP_IDEMPOTENCY_KEY="order-42")
    response = post_message(
        api_client, {**VALID_EMAIL, "to": "bob@example.com"}, HTTP_IDEMPOTENCY_KEY="order-42"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Message.all_tenants.count() == 1


def test_post_message__same_key_later__first_answer_replayed_unchanged(api_client):
    # Given a first request with a key, whose message has moved on since
    first = post_message(api_client, HTTP_IDEMPOTENCY_KEY="order-43")
    Message.all_tenants.update(status="delivered")
    # When the same request is sent again with the key
    again = post_message(api_client, HTTP_IDEMPOTENCY_KEY="order-43")
    # Then the first answer comes back as it was, byte for byte, marked as a replay
    assert again.status_code == 202
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Message.all_tenants.count() == 1


def test_post_message__storing_failed__key_free_for_the_retry_not_409(api_client, monkeypatch):
    # Given a first request whose message could not be stored (a database error)
    from notify.api import messages as views

    def fail(**kwargs):  # noqa: ANN003, ANN202
        raise RuntimeError("database went away")

    monkeypatch.setattr(views, "create_message", fail)
    api_client.raise_request_exception = False
    failed = post_message(api_client, HTTP_IDEMPOTENCY_KEY="order-45")
    assert failed.status_code == 500
    # When the client retries with the same key once the database is back
    monkeypatch.undo()
    again = post_message(api_client, HTTP_IDEMPOTENCY_KEY="order-45")
    # Then it is answered, not held as "in flight", and one message exists
    assert again.status_code == 202, again.content
    assert Message.all_tenants.count() == 1


def test_post_message__first_request_still_in_flight__409_retry_after(api_client):
    # Given a first request with this key that is being answered right now
    first = post_message(api_client, HTTP_IDEMPOTENCY_KEY="order-44")
    SendRequest.all_tenants.filter(idempotency_key="order-44").update(
        state=SendRequest.State.PROCESSING, response_status=None, response_body=None
    )
    # When a retry arrives
    response = post_message(api_client, HTTP_IDEMPOTENCY_KEY="order-44")
    # Then it is told to come back, and nothing new is sent
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_request_in_flight"
    assert response.headers["Retry-After"] == "1"
    assert Message.all_tenants.count() == 1
    assert first.status_code == 202


def test_post_message__key_older_than_24h__a_new_request(api_client, time_machine):
    # Given a key used 25 hours ago
    time_machine.move_to(timezone.now() - timedelta(hours=25), tick=False)
    first = post_message(api_client, HTTP_IDEMPOTENCY_KEY="order-45")
    time_machine.move_to(timezone.now() + timedelta(hours=25), tick=False)
    # When it is used again, even for another request
    again = post_message(
        api_client, {**VALID_EMAIL, "to": "bob@example.com"}, HTTP_IDEMPOTENCY_KEY="order-45"
    )
    # Then it is a new request
    assert again.status_code == 202 and again.json()["id"] != first.json()["id"]


def test_post_message__refused_request__its_key_stays_free(api_client):
    # Given a request refused for its content (an unknown template)
    refused = post_message(
        api_client,
        {"channel": "email", "to": "a@example.com", "template": "nope", "data": {}},
        HTTP_IDEMPOTENCY_KEY="order-46",
    )
    assert refused.status_code == 400
    # When the corrected request is sent with the same key
    fixed = post_message(api_client, HTTP_IDEMPOTENCY_KEY="order-46")
    # Then it is accepted
    assert fixed.status_code == 202


def test_post_message__same_key_two_tenants__independent(api_client, other_tenant_client):
    first = post_message(api_client, HTTP_IDEMPOTENCY_KEY="k1")
    second = post_message(other_tenant_client, HTTP_IDEMPOTENCY_KEY="k1")
    assert first.json()["id"] != second.json()["id"]


# --- reading ----------------------------------------------------------------------------------


def test_get_message__own_message__status_and_events(api_client):
    message_id = post_message(api_client).json()["id"]
    response = api_client.get(f"/v2/messages/{message_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == message_id
    assert body["status"] == MessageStatus.QUEUED
    assert [event["status"] for event in body["events"]] == ["queued"]


def test_get_message__other_tenants_message__404(api_client, other_tenant_client):
    # Given a message of the first tenant
    message_id = post_message(api_client).json()["id"]
    # When the second tenant asks for it
    response = other_tenant_client.get(f"/v2/messages/{message_id}")
    # Then it does not exist for them
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("message_id", ["261121000000500001", "abc", "1" * 40])
def test_get_message__unknown_or_malformed_id__404(api_client, message_id):
    assert api_client.get(f"/v2/messages/{message_id}").status_code == 404


def test_openapi_schema__served__lists_message_paths(anonymous_client, db):
    response = anonymous_client.get("/v2/schema?format=json")
    assert response.status_code == 200
    assert "/v2/messages" in response.json()["paths"]


def test_openapi_schema__generated__valid_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))
    assert "bearer" in (tmp_path / "s.yml").read_text()


def test_post_message__broker_down__202_and_message_kept_queued(
    api_client, monkeypatch, django_capture_on_commit_callbacks
):
    # Given a broker that refuses connections
    def broker_down(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ConnectionRefusedError("broker unreachable")

    monkeypatch.setattr("notify.messaging.tasks.deliver_message.apply_async", broker_down)
    # When
    with django_capture_on_commit_callbacks(execute=True):
        response = post_message(api_client)
    # Then the accepted message is not lost and the caller gets no 500
    assert response.status_code == 202
    assert Message.all_tenants.get(pk=response.json()["id"]).status == MessageStatus.QUEUED


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("HTTP_IDEMPOTENCY_KEY", "a\x00b"),
        ("HTTP_IDEMPOTENCY_KEY", "has space"),
        ("HTTP_IDEMPOTENCY_KEY", "x" * 256),
    ],
)
def test_post_message__bad_idempotency_key__400(api_client, header, value):
    response = post_message(api_client, **{header: value})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]


def test_post_message__nul_in_api_key__401(anonymous_client, db):
    anonymous_client.credentials(HTTP_AUTHORIZATION="Bearer nk_abc\x00def")
    assert post_message(anonymous_client).status_code == 401


def test_post_message__body_over_upload_limit__413(api_client):
    payload = {**VALID_EMAIL, "body": "x" * (9 * 1024 * 1024)}
    response = api_client.post("/v2/messages", payload, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_post_message__deeply_nested_json__400(api_client):
    response = api_client.post(
        "/v2/messages", "[" * 100_000 + "]" * 100_000, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_post_message__data_without_template__400(api_client):
    response = post_message(api_client, {**VALID_EMAIL, "data": {"a": 1}})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"template"}


def test_send_at__scheduled_then_cancelled__api_shows_it_and_refuses_a_second_cancel(
    api_client, other_tenant_client, monkeypatch, django_capture_on_commit_callbacks
):
    # Given a message scheduled through the API for tomorrow
    published: list[str] = []
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", published.append)
    tomorrow = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/v2/messages",
            {
                "channel": "email",
                "to": "a@example.com",
                "subject": "Reminder",
                "body": "Tomorrow",
                "send_at": tomorrow.isoformat(),
            },
            format="json",
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["send_at"] is not None
    assert published == []
    message_id = body["id"]
    # When another tenant tries to cancel it
    # Then it is not found
    assert other_tenant_client.post(f"/v2/messages/{message_id}/cancel").status_code == 404
    # When its tenant cancels it
    response = api_client.post(f"/v2/messages/{message_id}/cancel")
    # Then it is cancelled, and a second cancel is refused in the API's format
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = api_client.post(f"/v2/messages/{message_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_cancellable"


def test_send_at__more_than_a_year_ahead_or_not_a_time__400(api_client):
    base = {"channel": "email", "to": "a@example.com", "subject": "S", "body": "B"}
    far = (timezone.now() + timedelta(days=400)).isoformat()
    for value in (far, "tomorrow", 12):
        response = api_client.post("/v2/messages", {**base, "send_at": value}, format="json")
        assert response.status_code == 400, value
        assert "send_at" in response.json()["error"]["fields"]


def _accept(client, to: str) -> str:  # noqa: ANN001
    response = client.post(
        "/v2/messages",
        {"channel": "email", "to": to, "subject": "S", "body": "B"},
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_list__two_tenants__each_sees_only_its_own_newest_first_in_cursor_pages(
    api_client, other_tenant_client, monkeypatch
):
    # Given 5 messages of one tenant and 1 of another
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", lambda message_id: None)
    mine = [_accept(api_client, f"user{i}@example.com") for i in range(5)]
    theirs = _accept(other_tenant_client, "other@example.com")
    # When the first tenant lists them two at a time
    seen, url = [], "/v2/messages?limit=2"
    while url:
        page = api_client.get(url).json()
        assert len(page["results"]) <= 2
        seen += [message["id"] for message in page["results"]]
        url = page["next"]
    # Then it gets exactly its own, newest first, each once
    assert seen == list(reversed(mine))
    assert theirs not in seen
    # And the other tenant sees only its own
    assert [m["id"] for m in other_tenant_client.get("/v2/messages").json()["results"]] == [theirs]


def test_list__filters__narrow_the_list_and_bad_values_are_400(api_client, monkeypatch):
    # Given a queued message and a cancelled one
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", lambda message_id: None)
    queued = _accept(api_client, "a@example.com")
    cancelled = _accept(api_client, "b@example.com")
    assert api_client.post(f"/v2/messages/{cancelled}/cancel").status_code == 200
    # When filtered by status and by time
    by_status = api_client.get("/v2/messages?status=cancelled").json()["results"]
    future = (timezone.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    after_now = api_client.get("/v2/messages", {"created_after": future}).json()["results"]
    # Then only the matching messages are listed
    assert [m["id"] for m in by_status] == [cancelled]
    assert after_now == []
    by_channel = api_client.get("/v2/messages?channel=email").json()["results"]
    assert queued in [m["id"] for m in by_channel]
    assert api_client.get("/v2/messages?channel=sms").json()["results"] == []
    # And a filter value that means nothing is a 400 naming the field
    for query in ("status=lost", "channel=fax", "created_after=yesterday", "batch=x' OR 1=1"):
        response = api_client.get(f"/v2/messages?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "validation_error"


def test_docs__anonymous__interactive_page_pointing_at_the_schema(anonymous_client):
    response = anonymous_client.get("/v2/docs")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger" in page.lower() and "/v2/schema" in page


def _batch(client, count: int) -> str:  # noqa: ANN001
    response = client.post(
        "/v2/messages/batch",
        {
            "channel": "email",
            "subject": "S",
            "body": "B",
            "recipients": [{"to": f"r{n}@example.com"} for n in range(count)],
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()["batch_id"]


def _walk(client, url: str, between=lambda: None) -> list[str]:  # noqa: ANN001
    seen: list[str] = []
    for _ in range(100):
        page = client.get(url).json()
        seen += [message["id"] for message in page["results"]]
        url = page["next"]
        if url is None:
            return seen
        between()
    raise AssertionError(f"still a next page after 100 pages ({len(seen)} messages seen)")


def test_list__batch_larger_than_an_offset_reaches__every_message_once_and_the_pages_end(
    api_client, monkeypatch
):
    # Given a batch of 1,100 messages, all created at the same instant
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", lambda message_id: None)
    batch_id = _batch(api_client, 1_100)
    # When its pages are followed, 200 at a time
    seen = _walk(api_client, f"/v2/messages?batch={batch_id}&limit=200")
    # Then every message comes once and the last page says there is no next one
    assert len(seen) == 1_100
    assert len(set(seen)) == 1_100


def test_list__messages_arrive_between_pages__none_repeated_none_skipped(api_client, monkeypatch):
    # Given 30 messages accepted together
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", lambda message_id: None)
    batch_id = _batch(api_client, 30)
    before = set(Message.all_tenants.filter(batch_id=batch_id).values_list("pk", flat=True))
    # When the list is walked 7 at a time while a new message arrives after each page
    seen = _walk(
        api_client, "/v2/messages?limit=7", lambda: _accept(api_client, "late@example.com")
    )
    # Then each message that was there is listed once, and nothing twice
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


def test_list__previous_link__gives_back_the_page_before(api_client, monkeypatch):
    # Given 12 messages
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", lambda message_id: None)
    _batch(api_client, 12)
    first = api_client.get("/v2/messages?limit=5").json()
    second = api_client.get(first["next"]).json()
    third = api_client.get(second["next"]).json()
    # When the previous links are followed back
    back_to_second = api_client.get(third["previous"]).json()
    back_to_first = api_client.get(back_to_second["previous"]).json()
    # Then they are the same pages, and the first has no page before it
    assert [m["id"] for m in back_to_second["results"]] == [m["id"] for m in second["results"]]
    assert [m["id"] for m in back_to_first["results"]] == [m["id"] for m in first["results"]]
    assert first["previous"] is None and back_to_first["previous"] is None
    assert len(third["results"]) == 2 and third["next"] is None


@pytest.mark.parametrize(
    "cursor",
    [
        "cD0yMDI2",  # DRF's own shape, a position that is no time
        base64.urlsafe_b64encode(b'["2026", "123456789012345678"]').decode(),
        base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", "1\\u0000"]').decode(),
        base64.urlsafe_b64encode(b'["2026-01-01T00:00:00", "123456789012345678"]').decode(),
        base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", 5]').decode(),
        base64.urlsafe_b64encode(
            b'["2026-01-01T00:00:00+00:00", "123456789012345678", "x"]'
        ).decode(),
        "x" * 500,
        base64.urlsafe_b64encode(b'["0001-01-01T00:00:00+01:00", "123456789012345678"]').decode(),
        base64.urlsafe_b64encode(b'["9999-12-31T23:59:59-01:00", "123456789012345678"]').decode(),
    ],
)
def test_list__cursor_it_never_gave__400_naming_cursor(api_client, cursor):
    response = api_client.get("/v2/messages", {"cursor": cursor})
    assert response.status_code == 400, response.content
    assert "cursor" in response.json()["error"]["fields"]


@pytest.mark.parametrize("limit", ["0", "201", "ten", "-1"])
def test_list__limit_out_of_range__400_naming_limit(api_client, limit):
    response = api_client.get("/v2/messages", {"limit": limit})
    assert response.status_code == 400
    assert "limit" in response.json()["error"]["fields"]


def test_post_message__tags_metadata_priority__answered_back_and_found_by_tag(
    api_client, other_tenant_client, monkeypatch
):
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", lambda message_id: None)
    # Given a message with labels, the caller's own data and a priority, and one without
    body = {"channel": "email", "to": "a@example.com", "subject": "S", "body": "B"}
    labelled = {
        **body,
        "tags": ["signup", "eu-west", "signup"],
        "metadata": {"order": "A-17", "attempt": 2, "vip": True, "note": None},
        "priority": "high",
    }
    answer = api_client.post("/v2/messages", labelled, format="json")
    assert answer.status_code == 202, answer.content
    plain = _accept(api_client, "b@example.com")
    # and another tenant's message with the same tag
    other_tenant_client.post("/v2/messages", {**body, "tags": ["signup"]}, format="json")
    # When it is read back and the list is filtered by one of its tags
    message_id = answer.json()["id"]
    detail = api_client.get(f"/v2/messages/{message_id}").json()
    tagged = api_client.get("/v2/messages?tag=eu-west").json()["results"]
    # Then what was given comes back (each tag once), and only this tenant's tagged message
    for shown in (answer.json(), detail, tagged[0]):
        assert shown["tags"] == ["signup", "eu-west"]
        assert shown["metadata"] == labelled["metadata"]
        assert shown["priority"] == "high"
    assert [m["id"] for m in tagged] == [message_id]
    assert [m["id"] for m in api_client.get("/v2/messages?tag=signup").json()["results"]] == [
        message_id
    ]
    untagged = api_client.get(f"/v2/messages/{plain}").json()
    assert (untagged["tags"], untagged["metadata"], untagged["priority"]) == ([], {}, "normal")


@pytest.mark.parametrize(
    "field, value",
    [
        ("tags", ["Signup"]),
        ("tags", ["a b"]),
        ("tags", ["x" * 65]),
        ("tags", [f"t{n}" for n in range(11)]),
        ("tags", "signup"),
        ("metadata", {"nested": {"a": 1}}),
        ("metadata", {"list": [1]}),
        ("metadata", {"k": "v" * 501}),
        ("metadata", {"k" * 41: "v"}),
        ("metadata", {f"k{n}": n for n in range(51)}),
        ("metadata", ["not", "an", "object"]),
        ("priority", "urgent"),
        ("priority", 2),
    ],
)
def test_post_message__labels_out_of_bounds__400_naming_the_field_nothing_stored(
    api_client, field, value
):
    body = {"channel": "email", "to": "a@example.com", "subject": "S", "body": "B", field: value}
    response = api_client.post("/v2/messages", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not Message.all_tenants.exists()


def test_batch__tags_and_metadata__on_each_message_and_the_tag_finds_them(api_client, monkeypatch):
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", lambda message_id: None)
    response = api_client.post(
        "/v2/messages/batch",
        {
            "channel": "email",
            "subject": "S",
            "body": "B",
            "tags": ["newsletter"],
            "metadata": {"campaign": "dec"},
            "recipients": [{"to": f"r{n}@example.com"} for n in range(3)],
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    _accept(api_client, "single@example.com")
    found = api_client.get("/v2/messages?tag=newsletter").json()["results"]
    assert len(found) == 3
    assert all(m["metadata"] == {"campaign": "dec"} for m in found)
    assert api_client.get("/v2/messages?tag=Bad Tag").status_code == 400


def test_post_message__to_a_list__one_message_each_answered_together(
    api_client, other_tenant_client, monkeypatch
):
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", lambda message_id: None)
    # Given a send to three recipients, one of them twice
    body = {
        "channel": "email",
        "to": ["a@example.com", "b@example.com", "a@example.com", "c@example.com"],
        "subject": "S",
        "body": "B",
        "tags": ["notice"],
    }
    # When it is posted
    response = api_client.post("/v2/messages", body, format="json")
    # Then each recipient has one message, in the order given, under one batch id
    assert response.status_code == 202, response.content
    answer = response.json()
    assert [m["to"] for m in answer["messages"]] == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]
    assert answer["count"] == 3 and all(m["tags"] == ["notice"] for m in answer["messages"])
    stored = Message.all_tenants.filter(batch_id=answer["batch_id"])
    assert stored.count() == 3 and {m.lane for m in stored} == {"transactional"}
    # and the batch is this tenant's alone
    assert api_client.get(f"/v2/batches/{answer['batch_id']}").json()["count"] == 3
    assert other_tenant_client.get(f"/v2/batches/{answer['batch_id']}").status_code == 404


@pytest.mark.parametrize(
    "to, field",
    [
        ([], "to"),
        (["a@example.com", "not-an-address"], "to.1"),
        (["a@example.com", 5], "to.1"),
        ([f"u{n}@example.com" for n in range(101)], "to"),
        ({"a": "b"}, "to"),
    ],
)
def test_post_message__to_list_with_a_bad_recipient__400_naming_it_nothing_stored(
    api_client, to, field
):
    body = {"channel": "email", "to": to, "subject": "S", "body": "B"}
    response = api_client.post("/v2/messages", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not Message.all_tenants.exists()


def test_post_message__to_list_with_a_fallback__400(api_client):
    body = {
        "channel": "email",
        "to": ["a@example.com", "b@example.com"],
        "subject": "S",
        "body": "B",
        "fallback": [{"channel": "sms", "to": "+8613800138000"}],
    }
    response = api_client.post("/v2/messages", body, format="json")
    assert response.status_code == 400
    assert "fallback" in response.json()["error"]["fields"]


def test_post_message__to_list_with_template_data_missing__named_once_as_for_one(
    api_client, approve_as_operator
):
    api_client.post(
        "/v2/templates",
        {
            "key": "hi",
            "channel": "email",
            "subject": "Hi {{ name }}",
            "body": "<p>x</p>",
            "params": ["name"],
        },
        format="json",
    )
    approve_as_operator("hi")
    body = {"channel": "email", "to": ["a@example.com", "b@example.com"], "template": "hi"}
    response = api_client.post("/v2/messages", body, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["data"]


def test_post_message__default_priority__same_idempotency_fingerprint_as_before_it_existed():
    from notify.api.messages import request_fingerprint

    before = {"channel": "email", "to": "a@example.com", "subject": "S", "body": "B"}
    assert request_fingerprint({**before, "priority": "normal", "tags": [], "metadata": {}}) == (
        request_fingerprint(before)
    )
    assert request_fingerprint({**before, "priority": "high"}) != request_fingerprint(before)
