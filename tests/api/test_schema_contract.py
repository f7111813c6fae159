"""The OpenAPI schema is a contract a generated client relies on: every status an operation
answers is documented for it (in the API's error shape), and what the API answers validates
against the documented schema. New operations are covered automatically."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from drf_spectacular.generators import SchemaGenerator

from notify.messaging.services import deliver

METHODS = ("get", "post", "put", "patch", "delete")
# a value of each path parameter that names nothing
NOTHING = {
    "message_id": "261204000000999999",
    "batch_id": "261204000000999998",
    "key": "no-such-template",
    "number": "9",
    "provider_id": "999999",
    "webhook_id": "999999",
    "recipient": "nobody-here",
}


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict) -> list[tuple[str, str, dict]]:
    found = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]
    assert len(found) >= 39, "the schema lost operations"
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: NOTHING[m.group(1)], path)


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 to JSON Schema: `nullable: true` becomes a null alternative."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        converted = {"anyOf": [converted, {"type": "null"}]}
    return converted


def assert_matches(schema: dict, path: str, method: str, response: Any) -> None:
    documented = schema["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in documented, (method.upper(), path, status, sorted(documented))
    content = documented[status].get("content", {}).get("application/json")
    if content is None:
        # (documented without a body: the answer has none)
        assert not response.content, (method.upper(), path, status, response.content)
        return
    body_schema = _json_schema({**content["schema"], "components": schema["components"]})
    jsonschema.validate(response.json(), body_schema)


def test_schema__every_operation__documents_its_shared_error_answers(schema):
    # (the error shape is the ErrorOutput serializer's, as views document their own errors)
    assert set(schema["components"]["schemas"]["ErrorOutput"]["properties"]) == {"error"}
    # Given the generated schema / When each operation's responses are read
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        takes_body = "requestBody" in operation
        expected = {"401", "406", "429"}
        if "{" in path:
            expected |= {"400", "404"}
        if takes_body:
            expected |= {"400", "411", "413", "415"}
        # Then each shared answer is there, in the error shape
        assert expected <= set(responses), (method.upper(), path, sorted(responses))
        for code in expected:
            schema_ref = responses[code]["content"]["application/json"]["schema"]
            assert schema_ref == {"$ref": "#/components/schemas/ErrorOutput"}


def test_every_operation__without_a_key__answers_a_documented_401(schema, anonymous_client, db):
    for path, method, _ in operations(schema):
        response = getattr(anonymous_client, method)(concrete(path), {}, format="json")
        assert response.status_code == 401, (method, path)
        assert_matches(schema, path, method, response)


def test_every_operation__naming_nothing_or_bad_input__answers_a_documented_status(
    schema, api_client
):
    # Given a tenant's key, objects that do not exist and a body of the wrong shape
    for path, method, operation in operations(schema):
        # When each operation is called
        response = getattr(api_client, method)(concrete(path), {"to": 5, "data": []}, format="json")
        # Then its answer is one the schema documents for it, shaped as documented
        assert response.status_code != 500
        assert_matches(schema, path, method, response)
        if "requestBody" in operation:
            wrong_type = getattr(api_client, method)(
                concrete(path), "to=x", content_type="application/x-www-form-urlencoded"
            )
            assert wrong_type.status_code in (404, 415), (method, path)
            assert_matches(schema, path, method, wrong_type)
        html_only = getattr(api_client, method)(concrete(path), HTTP_ACCEPT="text/html")
        assert_matches(schema, path, method, html_only)


def test_message_list__page__matches_its_schema(schema, api_client):
    # Given a message
    sent = api_client.post(
        "/v2/messages",
        {"channel": "email", "to": "a@example.com", "subject": "S", "body": "B"},
        format="json",
    )
    assert sent.status_code == 202
    # When listed
    page = api_client.get("/v2/messages")
    # Then the page (next, previous, results) is what the schema says
    assert_matches(schema, "/v2/messages", "get", page)
    assert [m["id"] for m in page.json()["results"]] == [sent.json()["id"]]
    # And so is the message itself, its times not yet known included
    detail = api_client.get(f"/v2/messages/{sent.json()['id']}")
    assert detail.json()["sent_at"] is None
    assert_matches(schema, "/v2/messages/{message_id}", "get", detail)


def test_message_list__cursor_it_never_gave__400_naming_cursor(schema, api_client):
    response = api_client.get("/v2/messages", {"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert "cursor" in response.json()["error"]["fields"]
    assert_matches(schema, "/v2/messages", "get", response)


def test_version__unpublished__null_published_at_matches_its_schema(schema, api_client):
    # Given a template with a version that is not published
    api_client.post(
        "/v2/templates",
        {"key": "welcome", "channel": "email", "subject": "Hi", "body": "Hi"},
        format="json",
    )
    added = api_client.post("/v2/templates/welcome/versions", {"body": "v2"}, format="json")
    # Then its `published_at` is null, as the schema allows
    assert added.status_code == 201
    assert added.json()["published_at"] is None
    assert_matches(schema, "/v2/templates/{key}/versions", "post", added)


def test_inbox_read_all__answer__matches_its_schema(schema, api_client):
    response = api_client.post("/v2/inbox/user-1/read-all")
    assert response.json() == {"marked_read": 0}
    assert_matches(schema, "/v2/inbox/{recipient}/read-all", "post", response)


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/v2/messages", {"channel": "sms", "to": "+8613800138000", "body": "B", "subject": ""}),
        (
            "/v2/messages",
            {"channel": "email", "to": "a@b.example", "subject": "S", "body": "B", "category": ""},
        ),
        ("/v2/webhooks", {"url": "https://hooks.example.com/x", "description": ""}),
        ("/v2/suppressions", {"channel": "email", "to": "a@example.com", "reason": ""}),
        ("/v2/templates", {"key": "k", "channel": "email", "body": "B", "name": ""}),
    ],
)
def test_optional_text__empty__same_as_left_out(api_client, settings, path, payload):
    # Given an optional text whose default is empty, sent empty (as many clients send it)
    settings.ALLOW_PRIVATE_TARGETS = False
    # When posted / Then accepted, as when it is left out
    response = api_client.post(path, payload, format="json")
    assert response.status_code in (200, 201, 202), response.content


def test_schema__required_text_and_lists__constraints_declared(schema):
    components = schema["components"]["schemas"]
    # a text that may not be blank, and a list that may not be empty
    one, many = components["MessageCreateInput"]["properties"]["to"]["oneOf"]
    assert one["minLength"] == 1 and many["minItems"] == 1
    assert components["MessageBatchCreateInput"]["properties"]["recipients"]["minItems"] == 1
    # objects, not any JSON value
    assert components["ProviderInput"]["properties"]["config"]["type"] == "object"
    # an empty query parameter is the same as none
    listing = schema["paths"]["/v2/messages"]["get"]["parameters"]
    assert all("minLength" not in p["schema"] for p in listing if p["in"] == "query")


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/v2/messages", {"channel": "email", "to": 5, "subject": "S", "body": "B"}, "to"),
        (
            "/v2/messages",
            {"channel": "email", "to": "a@b.example", "subject": "S", "body": "B", "critical": 1},
            "critical",
        ),
        ("/v2/webhooks", {"url": "https://hooks.example.com/x", "description": 0}, "description"),
        ("/v2/webhooks", {"url": "https://hooks.example.com/x", "events": [1]}, "events"),
        ("/v2/templates", {"key": "k", "channel": "email", "body": "B", "params": [7]}, "params"),
        ("/v2/templates", {"key": "k", "channel": "sms", "body": "B", "autoescape": 0},
         "autoescape"),
        (
            "/v2/providers",
            {"channel": "sms", "kind": "http", "name": "x", "config": {}, "secrets": {},
             "priority": "5"},
            "priority",
        ),
        ("/v2/suppressions", {"channel": "email", "to": "a@b.example", "reason": 1.5}, "reason"),
    ],
)  # fmt: skip
def test_json_body__value_of_another_type__400_naming_the_field(
    schema, api_client, settings, path, payload, field
):
    # Given a value of a type the schema does not document for the field (DRF would coerce it)
    settings.ALLOW_PRIVATE_TARGETS = False
    # When posted
    response = api_client.post(path, payload, format="json")
    # Then it is refused, naming the field, as documented
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert_matches(schema, path, "post", response)


def test_query_string__text_values__still_parsed(api_client):
    # query strings are text: `?limit=1` and `?unread=true` keep working
    assert api_client.get("/v2/messages", {"limit": "1"}).status_code == 200
    assert api_client.get("/v2/inbox/user-1", {"unread": "true", "limit": "5"}).status_code == 200


def test_objects_of_every_kind__answers_match_their_schema(
    schema, api_client, settings, tenant, django_capture_on_commit_callbacks
):
    # Given one object of each kind, created through the API
    settings.ALLOW_PRIVATE_TARGETS = False
    tenant.templates_self_approve = True
    tenant.save()
    calls = [
        ("post", "/v2/templates", "/v2/templates",
         {"key": "welcome", "channel": "email", "subject": "Hi", "body": "Hi {{ name }}",
          "status": "approved"}),
        ("get", "/v2/templates", "/v2/templates", None),
        ("get", "/v2/templates/{key}", "/v2/templates/welcome", None),
        ("patch", "/v2/templates/{key}", "/v2/templates/welcome", {"name": "Welcome"}),
        ("post", "/v2/templates/{key}/versions", "/v2/templates/welcome/versions",
         {"subject": "Hi", "body": "Hello {{ name }}"}),
        ("get", "/v2/templates/{key}/versions", "/v2/templates/welcome/versions", None),
        ("get", "/v2/templates/{key}/versions/{number}", "/v2/templates/welcome/versions/2",
         None),
        ("post", "/v2/templates/{key}/versions/{number}/publish",
         "/v2/templates/welcome/versions/2/publish", None),
        ("post", "/v2/templates/{key}/render", "/v2/templates/welcome/render",
         {"data": {"name": "Ann"}}),
        ("post", "/v2/templates/{key}/rollback", "/v2/templates/welcome/rollback", {}),
        ("post", "/v2/templates/convert", "/v2/templates/convert", {"source": "Hi $name"}),
        ("post", "/v2/providers", "/v2/providers",
         {"channel": "sms", "kind": "http", "name": "carrier", "priority": 5.0,
          "config": {"url": "https://sms.example.com/send"}, "secrets": {"secret": "s" * 32}}),
        ("get", "/v2/providers", "/v2/providers", None),
        ("post", "/v2/webhooks", "/v2/webhooks", {"url": "https://hooks.example.com/n"}),
        ("get", "/v2/webhooks", "/v2/webhooks", None),
        ("post", "/v2/suppressions", "/v2/suppressions",
         {"channel": "email", "to": "gone@example.com", "reason": "asked"}),
        ("get", "/v2/suppressions", "/v2/suppressions", None),
        ("put", "/v2/preferences", "/v2/preferences",
         {"channel": "email", "to": "a@example.com", "category": "news", "opted_out": True}),
        ("get", "/v2/preferences", "/v2/preferences?channel=email&to=a@example.com", None),
        ("post", "/v2/messages", "/v2/messages",
         {"channel": "email", "to": "a@example.com", "template": "welcome",
          "data": {"name": "Ann"}}),
        ("post", "/v2/messages/batch", "/v2/messages/batch",
         {"channel": "email", "subject": "S", "body": "B",
          "recipients": [{"to": "b@example.com"}, {"to": "c@example.com"}]}),
        ("post", "/v2/messages", "/v2/messages",
         {"channel": "inapp", "to": "user-1", "subject": "S", "body": "B"}),
        ("get", "/v2/inbox/{recipient}", "/v2/inbox/user-1", None),
    ]  # fmt: skip
    answers = {}
    for method, documented_path, path, body in calls:
        # When each is called
        response = getattr(api_client, method)(path, body, format="json")
        # Then it succeeds, shaped as the schema says
        assert response.status_code < 300, (method, path, response.content)
        assert_matches(schema, documented_path, method, response)
        answers[(method, documented_path)] = response
    batch_id = answers[("post", "/v2/messages/batch")].json()["batch_id"]
    provider_id = answers[("post", "/v2/providers")].json()["id"]
    webhook_id = answers[("post", "/v2/webhooks")].json()["id"]
    for documented_path, path in [
        ("/v2/batches/{batch_id}", f"/v2/batches/{batch_id}"),
        ("/v2/providers/{provider_id}", f"/v2/providers/{provider_id}"),
        ("/v2/webhooks/{webhook_id}", f"/v2/webhooks/{webhook_id}"),
        ("/v2/webhooks/{webhook_id}/deliveries", f"/v2/webhooks/{webhook_id}/deliveries"),
    ]:
        assert_matches(schema, documented_path, "get", api_client.get(path))
    # And a delivered in-app message, in its inbox and marked read
    inapp_id = answers[("post", "/v2/messages")].json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        deliver(inapp_id)
    inbox = api_client.get("/v2/inbox/user-1")
    assert [item["id"] for item in inbox.json()["items"]] == [inapp_id]
    assert_matches(schema, "/v2/inbox/{recipient}", "get", inbox)
    marked = api_client.patch(f"/v2/inbox/user-1/{inapp_id}", {"read": True}, format="json")
    assert_matches(schema, "/v2/inbox/{recipient}/{message_id}", "patch", marked)
    detail = api_client.get(f"/v2/messages/{inapp_id}")
    assert detail.json()["delivery_attempts"]
    assert_matches(schema, "/v2/messages/{message_id}", "get", detail)


def test_json_body__whole_number_written_as_float__accepted_as_integer(api_client):
    # `5.0` is the integer 5 in JSON (JSON Schema agrees): clients that held a float send it
    response = api_client.post(
        "/v2/providers",
        {"channel": "sms", "kind": "http", "name": "carrier", "priority": 5.0,
         "config": {"url": "https://sms.example.com/send"}, "secrets": {"secret": "s" * 32}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["priority"] == 5
    fractional = api_client.patch(
        f"/v2/providers/{response.json()['id']}", {"priority": 5.5}, format="json"
    )
    assert fractional.status_code == 400
    assert "priority" in fractional.json()["error"]["fields"]


def test_json_body__wrong_item_type_and_missing_field__both_reported_by_item(api_client):
    # Given a list item of the wrong type, and a required field left out
    response = api_client.post("/v2/webhooks", {"events": [1]}, format="json")
    # Then both are answered at once, the item by its index (as DRF reports items)
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"events", "url"}
    assert list(fields["events"]) == ["0"]


def test_template_patch__empty_name__refused_not_blanked(api_client):
    api_client.post(
        "/v2/templates", {"key": "k", "channel": "sms", "body": "B", "name": "Kept"}, format="json"
    )
    response = api_client.patch("/v2/templates/k", {"name": ""}, format="json")
    assert response.status_code == 400
    assert api_client.get("/v2/templates/k").json()["name"] == "Kept"


def test_schema__default_locale__valid_against_the_documented_body(schema):
    # '' (the default locale) must validate: a strict client checks its own requests
    body_schema = _json_schema(
        {"$ref": "#/components/schemas/MessageCreateInput", "components": schema["components"]}
    )
    jsonschema.validate(
        {"channel": "email", "to": "a@example.com", "body": "B", "locale": ""}, body_schema
    )
    jsonschema.validate(
        {"channel": "email", "to": "a@example.com", "body": "B", "locale": "zh-CN"}, body_schema
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"channel": "email", "to": "a@example.com", "body": "B", "locale": "not a tag"},
            body_schema,
        )
