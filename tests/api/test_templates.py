import pytest

from notify.messaging.models import Message
from templates_store.models import Template
from templates_store.velocity.converter import MAX_SOURCE_CHARS

WELCOME = {
    "key": "welcome",
    "channel": "email",
    "subject": "Welcome {{ name }}",
    "body": "<p>Hello {{ name }}</p>",
}


@pytest.fixture
def welcome(api_client, approve_as_operator):  # noqa: ANN001, ANN201
    """Created by the tenant, approved by the operator."""
    response = api_client.post("/v2/templates", WELCOME, format="json")
    assert response.status_code == 201, response.content
    approve_as_operator("welcome")
    return response.json()


def test_create_template__valid__201_published_v1_autoescaped_for_email(welcome):
    assert welcome["key"] == "welcome"
    assert welcome["autoescape"] is True
    assert welcome["published_versions"] == {"": 1}


def test_create_template__syntax_error__400_naming_field_and_nothing_stored(api_client):
    response = api_client.post("/v2/templates", {**WELCOME, "body": "{% if %}"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"body"}
    assert Template.all_tenants.count() == 0


def test_create_template__duplicate_key__400(api_client, welcome):
    response = api_client.post("/v2/templates", WELCOME, format="json")
    assert response.status_code == 400
    assert "key" in response.json()["error"]["fields"]


def test_render__email_template__input_is_html_escaped(api_client, welcome):
    response = api_client.post(
        "/v2/templates/welcome/render", {"data": {"name": "<script>x</script>"}}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["body"] == "<p>Hello &lt;script&gt;x&lt;/script&gt;</p>"
    assert body["version"] == 1


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ self._TemplateReference__context }}",
        "{{ request.application.__globals__ }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
    ],
)
def test_create_or_render__ssti_payload__refused_never_executed(api_client, payload):
    # When an injection is stored as a template (or fails to compile)
    response = api_client.post(
        "/v2/templates", {"key": "evil", "channel": "sms", "body": payload}, format="json"
    )
    if response.status_code == 201:
        response = api_client.post("/v2/templates/evil/render", {"data": {}}, format="json")
    # Then it is an error in the API's format, not a rendered secret
    assert response.status_code in (400, 422)
    assert "error" in response.json()


def test_render__loop_forever__422_limit(api_client):
    api_client.post(
        "/v2/templates",
        {"key": "loop", "channel": "sms", "body": "{% for i in range(10**9) %}x{% endfor %}"},
        format="json",
    )
    response = api_client.post("/v2/templates/loop/render", {"data": {}}, format="json")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "template_limit_exceeded"


def test_versions__publish_new_then_rollback__one_action_each(api_client, welcome):
    # Given a second version
    response = api_client.post(
        "/v2/templates/welcome/versions", {"subject": "Hi", "body": "v2 {{ name }}"}, format="json"
    )
    assert response.json()["number"] == 2 and response.json()["published"] is False
    # When it is published
    assert api_client.post("/v2/templates/welcome/versions/2/publish").status_code == 200
    # Then it renders
    rendered = api_client.post(
        "/v2/templates/welcome/render", {"data": {"name": "A"}}, format="json"
    )
    assert rendered.json()["body"] == "v2 A"
    # When rolled back
    response = api_client.post("/v2/templates/welcome/rollback", {}, format="json")
    assert response.status_code == 200 and response.json()["number"] == 1
    rendered = api_client.post(
        "/v2/templates/welcome/render", {"data": {"name": "A"}}, format="json"
    )
    assert rendered.json()["body"] == "<p>Hello A</p>"


def test_render__locale_zh_cn__falls_back_to_zh(api_client, welcome):
    api_client.post(
        "/v2/templates/welcome/versions",
        {"locale": "zh", "body": "你好 {{ name }}", "publish": True},
        format="json",
    )
    response = api_client.post(
        "/v2/templates/welcome/render", {"data": {"name": "李"}, "locale": "zh-CN"}, format="json"
    )
    assert response.json()["body"] == "你好 李"
    response = api_client.post(
        "/v2/templates/welcome/render", {"data": {"name": "A"}, "locale": "fr-FR"}, format="json"
    )
    assert response.json()["body"] == "<p>Hello A</p>"


def test_template__other_tenant__404(api_client, other_tenant_client, welcome):
    assert other_tenant_client.get("/v2/templates/welcome").status_code == 404
    response = other_tenant_client.post("/v2/templates/welcome/render", {}, format="json")
    assert response.status_code == 404
    assert other_tenant_client.get("/v2/templates").json() == []


def test_convert__velocity_source__jinja_and_report(api_client):
    response = api_client.post(
        "/v2/templates/convert", {"source": "Hi $name#if($vip) VIP#end"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] in ("exact", "exact_with_warnings")
    assert body["jinja"]


def test_send_message__with_template_and_data__renders_body_and_subject(api_client, welcome):
    response = api_client.post(
        "/v2/messages",
        {"channel": "email", "to": "a@example.com", "template": "welcome", "data": {"name": "Ana"}},
        format="json",
    )
    assert response.status_code == 202, response.content
    message = Message.all_tenants.get(pk=response.json()["id"])
    assert message.subject == "Welcome Ana"
    assert message.html == "<p>Hello Ana</p>"
    assert message.params["template"] == "welcome"


def test_send_message__unknown_template__400(api_client, welcome):
    response = api_client.post(
        "/v2/messages",
        {"channel": "email", "to": "a@example.com", "template": "nope", "data": {}},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"template"}


def test_send_message__other_tenants_template__400(api_client, other_tenant_client, welcome):
    response = other_tenant_client.post(
        "/v2/messages",
        {"channel": "email", "to": "a@example.com", "template": "welcome", "data": {}},
        format="json",
    )
    assert response.status_code == 400
    assert Message.all_tenants.count() == 0


def test_send_message__nul_in_data__400_nothing_stored(api_client, welcome):
    response = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "a@example.com",
            "template": "welcome",
            "data": {"name": "x\x00"},
        },
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"data"}
    assert Message.all_tenants.count() == 0


def test_send_message__declared_param_missing__400(api_client, approve_as_operator):
    api_client.post(
        "/v2/templates",
        {
            "key": "otp",
            "channel": "email",
            "subject": "Code",
            "body": "{{ code }}",
            "params": ["code"],
        },
        format="json",
    )
    approve_as_operator("otp")
    response = api_client.post(
        "/v2/messages",
        {"channel": "email", "to": "a@example.com", "template": "otp", "data": {}},
        format="json",
    )
    assert response.status_code == 400
    assert "code" in response.json()["error"]["fields"]["data"][0]


def test_send_message__retry_after_template_changed__same_message(api_client, welcome):
    # Given a message sent with an idempotency key
    request = {
        "channel": "email",
        "to": "a@example.com",
        "template": "welcome",
        "data": {"name": "A"},
    }
    first = api_client.post("/v2/messages", request, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    # When the template changes and the caller retries the very same request
    api_client.post(
        "/v2/templates/welcome/versions",
        {"subject": "New", "body": "new", "publish": True},
        format="json",
    )
    retry = api_client.post("/v2/messages", request, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    # Then it is recognised as the same request
    assert retry.status_code == 202
    assert retry.json()["id"] == first.json()["id"]
    assert Message.all_tenants.count() == 1


def test_send_message__subject_with_markup__not_html_escaped(api_client, welcome):
    response = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "a@example.com",
            "template": "welcome",
            "data": {"name": "Tom & Jerry"},
        },
        format="json",
    )
    message = Message.all_tenants.get(pk=response.json()["id"])
    assert message.subject == "Welcome Tom & Jerry"
    assert message.html == "<p>Hello Tom &amp; Jerry</p>"


def test_send_message__unescaped_email_template__sent_as_html(api_client, approve_as_operator):
    api_client.post(
        "/v2/templates",
        {
            "key": "raw",
            "channel": "email",
            "subject": "S",
            "body": "<p>{{ x }}</p>",
            "autoescape": False,
        },
        format="json",
    )
    approve_as_operator("raw")
    response = api_client.post(
        "/v2/messages",
        {"channel": "email", "to": "a@example.com", "template": "raw", "data": {"x": "<b>y</b>"}},
        format="json",
    )
    message = Message.all_tenants.get(pk=response.json()["id"])
    assert message.html == "<p><b>y</b></p>"
    assert message.body == ""


def test_versions__locale_written_as_zh_cn__found_for_zh_dash_cn(api_client, welcome):
    response = api_client.post(
        "/v2/templates/welcome/versions",
        {"locale": "zh_cn", "body": "你好", "publish": True},
        format="json",
    )
    assert response.json()["locale"] == "zh-CN"
    rendered = api_client.post(
        "/v2/templates/welcome/render", {"data": {"name": "A"}, "locale": "zh-CN"}, format="json"
    )
    assert rendered.json()["body"] == "你好"


def test_versions__invalid_locale__400(api_client, welcome):
    response = api_client.post(
        "/v2/templates/welcome/versions", {"locale": "../etc", "body": "x"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"locale"}


def test_rollback__twice__steps_back_through_history(api_client, welcome):
    # Given v1, v2, v3 published in turn
    for body in ("v2", "v3"):
        api_client.post(
            "/v2/templates/welcome/versions", {"body": body, "publish": True}, format="json"
        )
    # When rolled back twice
    first = api_client.post("/v2/templates/welcome/rollback", {}, format="json").json()
    second = api_client.post("/v2/templates/welcome/rollback", {}, format="json").json()
    # Then each rollback goes one version further back
    assert (first["number"], second["number"]) == (2, 1)
    third = api_client.post("/v2/templates/welcome/rollback", {}, format="json")
    assert third.status_code == 409


def test_version_detail__get_and_delete_unpublished_only(api_client, welcome):
    api_client.post("/v2/templates/welcome/versions", {"body": "draft"}, format="json")
    assert api_client.get("/v2/templates/welcome/versions/2").json()["body"] == "draft"
    assert api_client.delete("/v2/templates/welcome/versions/1").status_code == 409
    assert api_client.delete("/v2/templates/welcome/versions/2").status_code == 204
    assert api_client.get("/v2/templates/welcome/versions/2").status_code == 404


def test_convert__nested_too_deep__422_not_500(api_client):
    response = api_client.post(
        "/v2/templates/convert", {"source": "#if($a)" * 3000 + "#end" * 3000}, format="json"
    )
    assert response.status_code in (200, 422)
    if response.status_code == 200:
        assert response.json()["status"] == "needs_review"


def test_convert__source_over_the_limit__400_naming_field_and_limit(api_client):
    # Given a Velocity source one character over the converter's limit
    source = "x" * (MAX_SOURCE_CHARS + 1)
    # When converted
    response = api_client.post("/v2/templates/convert", {"source": source}, format="json")
    # Then the API's own validation error names the field and the limit
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    message = f"A Velocity source of at most {MAX_SOURCE_CHARS:,} characters can be converted."
    assert error["fields"] == {"source": [message]}


def test_convert__source_at_the_limit__converted(api_client):
    # Given a Velocity source of exactly the limit
    source = "Dear $name, " + "x" * (MAX_SOURCE_CHARS - 12)
    # When converted
    response = api_client.post("/v2/templates/convert", {"source": source}, format="json")
    # Then it is converted
    assert response.status_code == 200
    assert response.json()["status"] in ("exact", "exact_with_warnings")
