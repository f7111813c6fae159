"""Two template environments through the API: tenant Jinja, and Velocity converted by the
platform (both sources, the report and the proof kept; rendered with the legacy helpers)."""

import pytest

from templates_store.models import Template, TemplateVersion

VELOCITY_ORDER = {
    "key": "order",
    "channel": "sms",
    "engine": "velocity",
    "body": "您的订单${order_no}已发货#if($vip)，VIP 优先派送#end。共 $items.size() 件",
    "samples": [
        {"order_no": "DD1", "vip": True, "items": [1, 2]},
        {"order_no": "DD2", "vip": False, "items": []},
    ],
}


def test_create_velocity__exact_with_samples__converted_verified_and_published(api_client):
    # Given a tenant's Velocity template with sample data
    # When created with engine velocity
    response = api_client.post("/v2/templates", VELOCITY_ORDER, format="json")
    # Then it is stored converted, verified on both samples and published
    assert response.status_code == 201, response.content
    assert response.json()["published_versions"] == {"": 1}
    version = TemplateVersion.objects.get(template__key="order")
    assert version.engine == "velocity"
    assert version.legacy_body == VELOCITY_ORDER["body"]
    assert "vnt" in version.body or "vn(" in version.body
    assert version.conversion_status in ("exact", "exact_with_warnings")
    assert (version.verified_cases, version.mismatches) == (2, 0)
    assert version.conversion_report["verified_with_legacy_engine"] is True


def test_render_velocity__published__renders_what_the_legacy_engine_did(api_client):
    # Given a published converted template
    api_client.post("/v2/templates", VELOCITY_ORDER, format="json")
    # When previewed with data it was not verified on
    response = api_client.post(
        "/v2/templates/order/render",
        {"data": {"order_no": "X9", "vip": True, "items": ["a"]}},
        format="json",
    )
    # Then the text is airspeed's, quirks included (an unknown reference stays literal)
    assert response.status_code == 200, response.content
    assert response.json()["body"] == "您的订单X9已发货，VIP 优先派送。共 1 件"
    response = api_client.post("/v2/templates/order/render", {"data": {}}, format="json")
    assert response.json()["body"] == "您的订单${order_no}已发货。共 $items.size() 件"


def test_create_velocity__no_samples__stored_but_not_published(api_client):
    # Given Velocity without anything to verify it on
    payload = {**VELOCITY_ORDER, "key": "unproven", "samples": []}
    # When created
    response = api_client.post("/v2/templates", payload, format="json")
    # Then it is kept, but not live: the proof rules need a verified case
    assert response.status_code == 201, response.content
    assert response.json()["published_versions"] == {}
    publish = api_client.post("/v2/templates/unproven/versions/1/publish", format="json")
    assert publish.status_code == 409
    assert "no case was verified" in publish.json()["error"]["message"]


def test_create_velocity__python_internals__needs_review_and_never_run_by_legacy_engine(
    api_client, tmp_path
):
    # Given Velocity reaching Python internals (the legacy engine has no sandbox)
    marker = tmp_path / "pwned"
    body = (
        "#set($c = $s.__class__.__mro__[1].__subclasses__())"
        f"#foreach($k in $c)#if($k.__name__ == 'Popen')$k('touch {marker}', -1, $n, $n, $n, "
        "$n, $n, true, true)#end#end"
    )
    payload = {"key": "evil", "channel": "sms", "engine": "velocity", "body": body}
    payload["samples"] = [{"s": "x"}]
    # When created
    response = api_client.post("/v2/templates", payload, format="json")
    # Then the conversion needs review, nothing was rendered by the legacy engine, nothing ran
    assert response.status_code == 201, response.content
    version = TemplateVersion.objects.get(template__key="evil")
    assert version.conversion_status == "needs_review"
    assert version.verified_cases == 0
    assert version.conversion_report["verified_with_legacy_engine"] is False
    assert response.json()["published_versions"] == {}
    render = api_client.post(
        "/v2/templates/evil/render", {"data": {"s": "x"}, "version": 1}, format="json"
    )
    assert render.status_code == 422
    assert render.json()["error"]["code"] == "template_security_error"
    assert not marker.exists()


@pytest.mark.parametrize(
    "body",
    [
        "{{ _vdata|vn('x') }}",
        "{{ (1|vfor('i', [1]))|vp('gi_frame') }}",
        "{{ x|vc('__init__', []) }}",
    ],
)
def test_create_jinja__legacy_helper_named__400_no_such_filter(api_client, body):
    # Given tenant Jinja naming a helper of the converted-template environment
    payload = {"key": "helper", "channel": "sms", "body": body}
    # When created
    response = api_client.post("/v2/templates", payload, format="json")
    # Then it does not compile: the helpers do not exist in the tenant environment
    assert response.status_code == 400
    assert "body" in response.json()["error"]["fields"]
    assert not Template.all_tenants.filter(key="helper").exists()


def test_add_version__velocity_to_jinja_template__each_version_renders_in_its_engine(
    api_client,
):
    # Given a Jinja template
    api_client.post(
        "/v2/templates",
        {"key": "mixed", "channel": "sms", "body": "J {{ name|upper }}"},
        format="json",
    )
    # When a Velocity version is added and published
    response = api_client.post(
        "/v2/templates/mixed/versions",
        {
            "engine": "velocity",
            "body": "V $name.upper()",
            "samples": [{"name": "ann"}],
            "publish": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["engine"] == "velocity"
    assert response.json()["legacy_body"] == "V $name.upper()"
    # Then each version renders in its own environment
    first = api_client.post(
        "/v2/templates/mixed/render", {"data": {"name": "bo"}, "version": 1}, format="json"
    )
    second = api_client.post("/v2/templates/mixed/render", {"data": {"name": "bo"}}, format="json")
    assert first.json()["body"] == "J BO"
    assert second.json()["body"] == "V BO"
    assert second.json()["version"] == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{% for i in range(10**9) %}x{% endfor %}", "template_limit_exceeded"),
        ("{{ 'x' * 10**8 }}", "template_limit_exceeded"),
        ("{{ x.__class__ }}", "template_security_error"),
        ("{{ 1 // 0 }}", "render_error"),
    ],
)
def test_render__failure__422_with_its_own_code(api_client, body, code):
    # Given a tenant template that fails at render time
    api_client.post("/v2/templates", {"key": "t", "channel": "sms", "body": body}, format="json")
    # When previewed
    response = api_client.post("/v2/templates/t/render", {"data": {"x": 1}}, format="json")
    # Then the error says which budget or rule stopped it
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


def test_render_velocity__other_tenant__404(api_client, other_tenant_client):
    # Given a converted template of the first tenant
    api_client.post("/v2/templates", VELOCITY_ORDER, format="json")
    # When the second tenant renders or reads it
    render = other_tenant_client.post("/v2/templates/order/render", {"data": {}}, format="json")
    versions = other_tenant_client.get("/v2/templates/order/versions")
    # Then it does not exist for them
    assert render.status_code == 404
    assert versions.status_code == 404
