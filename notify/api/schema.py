"""The OpenAPI schema says what the API answers: request constraints the serializers enforce,
and every error status an operation can answer, in the API's one error shape.

drf-spectacular documents what a view declares; the answers every view shares (401 without a
key, 404 for another tenant's object, 400 for bad input, 429 past the rate limit…) come from
DRF and `notify.api.errors`, so they are added here, once, by what the operation takes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from notify.api.validation import LOCALE, LocaleField

_JSON = "application/json"
_ERROR_REF = {"$ref": "#/components/schemas/ErrorOutput"}
# (what each status means here, and its `error.code`s)
_SHARED_ANSWERS = {
    "400": "`validation_error` (with `fields`: what is wrong with each) or `parse_error` "
    "(the body is not JSON).",
    "401": "`not_authenticated` or `authentication_failed`: no key, or not a valid one.",
    "404": "`not_found`: no such object for your key (another tenant's objects do not exist "
    "for you).",
    "406": "`not_acceptable`: the API answers JSON only.",
    "409": "`idempotency_request_in_flight`: the first request with this `Idempotency-Key` is "
    "still being answered; try again.",
    "411": "`length_required`: a body sent in chunks; send it with a `Content-Length`.",
    "413": "`request_too_large`: the body is over the upload limit.",
    "415": "`unsupported_media_type`: send `Content-Type: application/json`.",
    "422": "`idempotency_key_reused`: this `Idempotency-Key` came with another request.",
    "429": "`rate_limited`: over your key's requests per second; the `Retry-After` header "
    "says when to try again.",
}


_RETRY_AFTER_ANSWERS = ("409", "429")
_RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 1},
}


class NotifyAutoSchema(AutoSchema):
    """Request constraints the fields enforce: a text that may not be blank has
    `minLength: 1`, a list that may not be empty `minItems: 1`."""

    def _get_serializer_field_meta(self, field: Any, direction: str) -> dict:
        meta = super()._get_serializer_field_meta(field, direction)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and not field.allow_blank
            and not field.read_only
        ):
            meta.setdefault("minLength", 1)
        return meta

    def _map_serializer_field(
        self, field: Any, direction: str, bypass_extensions: bool = False
    ) -> dict:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, LocaleField) and schema.get("type") == "string":
            # ('' is the default locale: drf-spectacular adds it as a `maxLength: 0` choice
            # beside the pattern, so the pattern itself must not match it)
            schema["pattern"] = f"^{LOCALE.pattern}$"
        if (
            direction == "request"
            and isinstance(field, (serializers.ListField, serializers.ListSerializer))
            and schema.get("type") == "array"
        ):
            if not field.allow_empty:
                schema["minItems"] = max(schema.get("minItems", 0), 1)
            if getattr(field, "max_length", None) is not None:
                schema.setdefault("maxItems", field.max_length)
        return schema


def _answers_of(operation: dict, path: str) -> list[str]:
    parameters = operation.get("parameters", [])
    public = {} in operation.get("security", [{}])
    takes_body = "requestBody" in operation
    answers = ["406"]
    if not public:
        answers += ["401", "429"]
    if "{" in path:
        answers.append("404")
    if "{" in path or takes_body or any(p.get("in") == "query" for p in parameters):
        answers.append("400")
    if takes_body:
        answers += ["411", "413", "415"]
    if any(p.get("in") == "header" and p.get("name") == "Idempotency-Key" for p in parameters):
        answers += ["409", "422"]
    return answers


def document_shared_answers(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular postprocessing hook: each operation's shared error answers, where it
    does not document that status itself."""
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            for parameter in operation.get("parameters", []):
                # (an empty query parameter is the same as none: `?status=` filters nothing)
                if parameter.get("in") == "query":
                    parameter.get("schema", {}).pop("minLength", None)
            responses = operation.setdefault("responses", {})
            for code in _answers_of(operation, path):
                documented = responses.get(code)
                if documented is None:
                    documented = responses[code] = {
                        "description": _SHARED_ANSWERS[code],
                        "content": {_JSON: {"schema": _ERROR_REF}},
                    }
                    if code in _RETRY_AFTER_ANSWERS:
                        documented["headers"] = {"Retry-After": _RETRY_AFTER}
                elif _SHARED_ANSWERS[code] not in documented.get("description", ""):
                    # (the view's own meaning of this status, then the shared one)
                    own = documented.get("description", "").strip()
                    documented["description"] = f"{own} Also: {_SHARED_ANSWERS[code]}".strip()
            operation["responses"] = dict(sorted(responses.items()))
    # (the ErrorOutput component is notify.api.errors.ErrorOutput's, which views document
    # their own errors with; the schema's validation test fails should none refer to it)
    return result
