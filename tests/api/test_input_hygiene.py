"""No input reaches a 500, and nothing that cannot be sent is accepted: header-bound fields,
Unicode that cannot be encoded, numbers nothing can store, depth, shapes, types, bytes, headers."""

import json

import pytest

from notify.messaging.models import Message
from templates_store.models import Template

VALID = {"channel": "email", "to": "ana@example.com", "subject": "Hello", "body": "Hi"}
# One of each kind: tab, vertical tab, form feed, a file separator, DEL, NEL and another C1
# control, and Unicode's line and paragraph separators. All of them break a header line.
HEADER_BREAKERS = ["\t", "\x0b", "\x0c", "\x1c", "\x7f", "\x85", "\x9f", "\u2028", "\u2029"]


def codepoint(char: str) -> str:
    return f"U+{ord(char):04X}"


def post_json_text(client, path: str, text: str | bytes, **extra):  # noqa: ANN001, ANN201
    """Posts JSON text exactly as given: `"\\ud800"` stays an escape the server must decode."""
    return client.post(path, data=text, content_type="application/json", **extra)


def with_raw(payload: dict, placeholder_value: str) -> str:
    """`payload` as JSON text with the string "RAW" replaced by `placeholder_value` verbatim."""
    return json.dumps(payload).replace('"RAW"', placeholder_value)


@pytest.fixture
def welcome(api_client, approve_as_operator):  # noqa: ANN001, ANN201
    response = api_client.post(
        "/v2/templates",
        {"key": "welcome", "channel": "email", "subject": "Hi {{ name }}", "body": "<p>x</p>"},
        format="json",
    )
    assert response.status_code == 201, response.content
    return approve_as_operator("welcome")


def assert_api_error(response, status: int, code: str) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


# --- header-bound fields ----------------------------------------------------------------------


@pytest.mark.parametrize("char", HEADER_BREAKERS, ids=codepoint)
def test_post_message__control_character_in_subject__400_naming_it_and_nothing_stored(
    api_client, char
):
    # When
    response = api_client.post("/v2/messages", {**VALID, "subject": f"a{char}b"}, format="json")
    # Then
    error = assert_api_error(response, 400, "validation_error")
    assert set(error["fields"]) == {"subject"}
    assert codepoint(char) in error["fields"]["subject"][0]
    assert not Message.all_tenants.exists()


@pytest.mark.parametrize(
    "to",
    ['"a\x0bb"@example.com', '"a\tb"@example.com', "a@exam\u2028ple.com", "a@exam\x85ple.com"],
    ids=["vt-in-quoted-local-part", "tab-in-quoted-local-part", "U+2028-in-domain", "NEL"],
)
def test_post_message__control_character_in_recipient__400(api_client, to):
    response = api_client.post("/v2/messages", {**VALID, "to": to}, format="json")
    error = assert_api_error(response, 400, "validation_error")
    assert set(error["fields"]) == {"to"}
    assert not Message.all_tenants.exists()


@pytest.mark.parametrize("char", HEADER_BREAKERS, ids=codepoint)
def test_post_message__template_renders_control_character_into_subject__400(
    api_client, welcome, char
):
    # Given an approved template whose subject is "Hi {{ name }}"
    # When the data puts a line-breaking character into it
    response = api_client.post(
        "/v2/messages",
        {"channel": "email", "to": "a@example.com", "template": "welcome", "data": {"name": char}},
        format="json",
    )
    # Then the message is refused now, not retried for an hour later
    error = assert_api_error(response, 400, "validation_error")
    assert "rendered subject" in error["fields"]["data"][0]
    assert codepoint(char) in error["fields"]["data"][0]
    assert not Message.all_tenants.exists()


@pytest.mark.parametrize(
    "subject",
    ["Family 👨\u200d👩\u200d👧 trip", "\u200fשלום\u200f", "Crème brûlée, 寿司 & ½"],
    ids=["emoji-zwj-sequence", "right-to-left-marks", "accents-cjk-symbols"],
)
def test_post_message__subject_with_format_characters_and_any_script__202(api_client, subject):
    response = api_client.post("/v2/messages", {**VALID, "subject": subject}, format="json")
    assert response.status_code == 202
    assert Message.all_tenants.get().subject == subject


def test_post_message__tab_and_form_feed_in_body__202_body_is_not_a_header(api_client):
    response = api_client.post("/v2/messages", {**VALID, "body": "a\tb\x0cc"}, format="json")
    assert response.status_code == 202


# --- lone surrogates anywhere in a JSON body --------------------------------------------------


MESSAGE_WITH_TEMPLATE = {"channel": "email", "to": "a@example.com", "template": "welcome"}


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({**VALID, "subject": "RAW"}, "subject"),
        ({**VALID, "body": "RAW"}, "body"),
        ({**VALID, "html": "RAW"}, "html"),
        ({**VALID, "to": "RAW"}, "to"),
        ({**VALID, "channel": "RAW"}, "channel"),
        ({**MESSAGE_WITH_TEMPLATE, "data": {"name": "RAW"}}, "data.name"),
        ({**MESSAGE_WITH_TEMPLATE, "data": {"items": [{"title": "RAW"}]}}, "data.items[0].title"),
        ({**MESSAGE_WITH_TEMPLATE, "locale": "RAW"}, "locale"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
@pytest.mark.parametrize("surrogate", ['"\\ud800"', '"x\\udfffy"', '"\\udc00\\ud800"'])
def test_post_message__lone_surrogate_anywhere__400_naming_where_and_nothing_stored(
    api_client, welcome, payload, where, surrogate
):
    # When a JSON string holds a surrogate that is not half of a pair
    response = post_json_text(api_client, "/v2/messages", with_raw(payload, surrogate))
    # Then: a 400 in the API's format, saying where, not a 500
    error = assert_api_error(response, 400, "parse_error")
    assert f"{where} contains a lone surrogate" in error["message"]
    assert not Message.all_tenants.exists()


def test_post_message__lone_surrogate_in_a_data_key__400(api_client, welcome):
    text = json.dumps({**MESSAGE_WITH_TEMPLATE, "data": {"name": "A", "KEY": 1}}).replace(
        '"KEY"', '"\\ud800"'
    )
    error = assert_api_error(post_json_text(api_client, "/v2/messages", text), 400, "parse_error")
    assert "data contains a lone surrogate" in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("post", "/v2/templates", {"key": "k", "channel": "sms", "body": "RAW"}),
        ("post", "/v2/templates", {"key": "k", "channel": "sms", "body": "x", "params": ["RAW"]}),
        ("patch", "/v2/templates/welcome", {"status": "RAW"}),
        ("patch", "/v2/templates/welcome", {"name": "RAW"}),
        ("post", "/v2/templates/welcome/versions", {"body": "RAW"}),
        ("post", "/v2/templates/welcome/render", {"data": {"name": "RAW"}}),
        ("post", "/v2/templates/convert", {"source": "RAW"}),
    ],
)
def test_templates_api__lone_surrogate__400(api_client, welcome, method, path, payload):
    text = with_raw(payload, '"\\ud800"')
    response = getattr(api_client, method)(path, data=text, content_type="application/json")
    assert_api_error(response, 400, "parse_error")
    assert Template.all_tenants.count() == 1
    assert Template.all_tenants.get().status == Template.Status.APPROVED


def test_post_message__surrogate_pair__202_decoded_to_its_character(api_client):
    # "\ud83d\ude00" is one character, 😀: valid, and kept.
    text = with_raw({**VALID, "subject": "RAW"}, '"\\ud83d\\ude00"')
    response = post_json_text(api_client, "/v2/messages", text)
    assert response.status_code == 202
    assert Message.all_tenants.get().subject == "😀"


# --- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "9" * 5000])
def test_post_message__number_nothing_can_store__400(api_client, welcome, literal):
    text = with_raw({**MESSAGE_WITH_TEMPLATE, "data": {"name": "A", "n": "RAW"}}, literal)
    assert_api_error(post_json_text(api_client, "/v2/messages", text), 400, "parse_error")
    assert not Message.all_tenants.exists()


@pytest.mark.parametrize("literal", ["1e-400", "1.7976931348623157e308", "9" * 1000])
def test_post_message__extreme_but_finite_number__202(api_client, welcome, literal):
    text = with_raw({**MESSAGE_WITH_TEMPLATE, "data": {"name": "A", "n": "RAW"}}, literal)
    assert post_json_text(api_client, "/v2/messages", text).status_code == 202


@pytest.mark.parametrize("version", ["1e400", "99999999999999999999999999", "-1", "1.5"])
def test_render__absurd_version_number__400_or_404(api_client, welcome, version):
    text = with_raw({"data": {}, "version": "RAW"}, version)
    response = post_json_text(api_client, "/v2/templates/welcome/render", text)
    assert response.status_code in (400, 404)
    assert "error" in response.json()


@pytest.mark.parametrize(
    "path",
    [
        "/v2/templates/welcome/versions/99999999999999999999999999",
        "/v2/templates/welcome/versions/99999999999999999999999999/publish",
    ],
)
def test_version_path__number_beyond_any_integer_column__404(api_client, welcome, path):
    response = api_client.get(path) if path.endswith("9") else api_client.post(path)
    assert_api_error(response, 404, "not_found")


# --- depth ------------------------------------------------------------------------------------


def nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels):
        value = {"x": value}
    return value


def test_post_message__data_nested_40_levels__400(api_client, welcome):
    payload = {**MESSAGE_WITH_TEMPLATE, "data": {"name": "A", "deep": nested(40)}}
    error = assert_api_error(
        api_client.post("/v2/messages", payload, format="json"), 400, "parse_error"
    )
    assert "nested more than 32 levels" in error["message"]


def test_post_message__data_nested_20_levels__202(api_client, welcome):
    payload = {**MESSAGE_WITH_TEMPLATE, "data": {"name": "A", "deep": nested(20)}}
    assert api_client.post("/v2/messages", payload, format="json").status_code == 202


# --- shapes and types -------------------------------------------------------------------------


ENDPOINTS = [
    ("post", "/v2/messages"),
    ("post", "/v2/templates"),
    ("patch", "/v2/templates/welcome"),
    ("post", "/v2/templates/welcome/versions"),
    ("post", "/v2/templates/welcome/render"),
    ("post", "/v2/templates/welcome/rollback"),
    ("post", "/v2/templates/convert"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("body", ["[]", '"text"', "1", "null", "true", "[{}]"])
def test_endpoint__json_body_not_an_object__400(api_client, welcome, method, path, body):
    response = getattr(api_client, method)(path, data=body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in ("validation_error", "parse_error")


WRONG_TYPES = [1, 1.5, True, None, [], {}, ["a"], {"a": "b"}, 10**30]
FIELDS = {
    ("post", "/v2/messages"): (
        {**MESSAGE_WITH_TEMPLATE, "data": {"name": "A"}},
        ["channel", "to", "subject", "body", "html", "template", "data", "locale"],
    ),
    ("post", "/v2/templates"): (
        {"key": "k", "channel": "sms", "body": "b"},
        ["key", "name", "channel", "params", "subject", "body", "locale", "autoescape", "status"],
    ),
    ("patch", "/v2/templates/welcome"): (
        {"name": "n"},
        ["name", "params", "status", "autoescape"],
    ),
    ("post", "/v2/templates/welcome/versions"): (
        {"body": "b"},
        ["subject", "body", "locale", "publish"],
    ),
    ("post", "/v2/templates/welcome/render"): ({"data": {}}, ["data", "locale", "version"]),
    ("post", "/v2/templates/welcome/rollback"): ({}, ["locale"]),
    ("post", "/v2/templates/convert"): ({"source": "x"}, ["source"]),
}


@pytest.mark.parametrize(("method", "path"), list(FIELDS))
def test_endpoint__any_type_in_any_field__never_a_500(api_client, welcome, method, path):
    # Given every field of the endpoint, and values of every other JSON type
    base, fields = FIELDS[method, path]
    problems = []
    for field in fields:
        for value in WRONG_TYPES:
            # When one field gets one of them
            response = getattr(api_client, method)(path, {**base, field: value}, format="json")
            # Then the answer is a success (the value converts, e.g. 1 → "1") or an error in
            # the API's format that says what is wrong
            if response.status_code >= 500:
                problems.append(f"{field}={value!r}: {response.status_code}")
            elif response.status_code == 400 and not response.json()["error"].get("fields"):
                problems.append(f"{field}={value!r}: 400 without fields")
    assert problems == []


# --- bytes and headers ------------------------------------------------------------------------


def test_post_message__body_not_utf8__400(api_client):
    body = b'{"channel":"email","to":"a@example.com","subject":"\xff\xfe","body":"x"}'
    error = assert_api_error(post_json_text(api_client, "/v2/messages", body), 400, "parse_error")
    assert "utf-8" in error["message"].lower()


@pytest.mark.parametrize("charset", ["latin-1", "utf-16", "rot13", "no-such-charset"])
def test_post_message__declared_charset__ignored_json_is_utf8(api_client, charset):
    # RFC 8259 JSON is UTF-8 and defines no charset parameter: the body is read as UTF-8.
    body = json.dumps({**VALID, "subject": "Crème"}, ensure_ascii=False).encode()
    response = api_client.post(
        "/v2/messages", data=body, content_type=f"application/json; charset={charset}"
    )
    assert response.status_code == 202
    assert Message.all_tenants.get().subject == "Crème"


@pytest.mark.parametrize(
    "key",
    ["é", "a\x7fb", "a\tb", "\x85", "x" * 10_000, ""],
    ids=["latin1", "DEL", "tab", "NEL", "long", "empty"],
)
def test_post_message__absurd_idempotency_key__400(api_client, key):
    response = api_client.post("/v2/messages", VALID, format="json", HTTP_IDEMPOTENCY_KEY=key)
    error = assert_api_error(response, 400, "validation_error")
    assert set(error["fields"]) == {"Idempotency-Key"}


@pytest.mark.parametrize("length", ["-1", "abc", "99999999999999999999"])
def test_post_message__absurd_content_length__not_a_500(api_client, length):
    response = api_client.post("/v2/messages", VALID, format="json", CONTENT_LENGTH=length)
    assert response.status_code < 500
    assert "error" in response.json() or response.status_code == 202


@pytest.mark.parametrize(
    "accept", ["text/html", "application/json; indent=99999999999999", "*/*; q=abc", "\x7f"]
)
def test_post_message__absurd_accept_header__not_a_500(api_client, accept):
    response = api_client.post("/v2/messages", VALID, format="json", HTTP_ACCEPT=accept)
    assert response.status_code in (202, 406)


def test_post_message__a_name_twice_in_one_object__400_and_nothing_stored(api_client):
    # Given a body that names the recipient twice (one parser reads the first, another the last)
    text = '{"channel": "email", "to": "a@example.com", "to": "b@example.com", "body": "Hi"}'
    # When it is posted
    response = post_json_text(api_client, "/v2/messages", text)
    # Then it is refused, saying which name, and nothing is sent to either
    error = assert_api_error(response, 400, "parse_error")
    assert "'to' appears twice" in error["message"]
    assert not Message.all_tenants.exists()


def test_list__more_query_parameters_than_django_reads__400_in_the_api_format(api_client):
    query = "&".join(f"x{n}=1" for n in range(1_100))
    response = api_client.get(f"/v2/messages?{query}")
    assert_api_error(response, 400, "bad_request")


def test_any_url__host_not_allowed__400_in_the_api_format(api_client):
    response = api_client.get("/v2/messages", HTTP_HOST="evil.example")
    assert response["Content-Type"] == "application/json"
    assert_api_error(response, 400, "bad_request")


def test_post_message__chunked_body_without_length__411_not_read_as_empty(api_client):
    response = api_client.post(
        "/v2/messages",
        VALID,
        format="json",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )
    assert_api_error(response, 411, "length_required")
    assert not Message.all_tenants.exists()


@pytest.mark.parametrize(
    "accept",
    [
        "application/json;q=0",
        "*/*;q=0",
        "text/html;q=1, */*;q=0",
        "application/*; q=0.000",
        "application/json;q=0, */*",
        "application/json;q=0.0, application/*",
    ],
)
def test_post_message__json_refused_by_accept__406_nothing_stored(api_client, accept):
    response = api_client.post("/v2/messages", VALID, format="json", HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert not Message.all_tenants.exists()


@pytest.mark.parametrize("accept", ["application/json;q=0.1", "text/html, */*;q=0.5", ""])
def test_post_message__json_acceptable__202(api_client, accept):
    response = api_client.post("/v2/messages", VALID, format="json", HTTP_ACCEPT=accept)
    assert response.status_code == 202


def test_get__chunked_marker_without_a_body__answered(api_client):
    response = api_client.get("/v2/messages", HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 200
