"""Every API error has one shape:

    {"error": {"code": "validation_error", "message": "...", "fields": {"to": ["..."]}}}

`fields` appears on validation errors and names each bad field."""

import logging

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "parse_error",
    exceptions.Throttled: "rate_limited",
}


class ErrorOutput(serializers.Serializer):
    """The error shape, for the OpenAPI schema."""

    class Detail(serializers.Serializer):
        class Meta:
            ref_name = "ErrorDetail"

        code = serializers.CharField()
        message = serializers.CharField()
        fields = serializers.DictField(required=False)

    error = Detail()


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    error: dict = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return {"error": error}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("request_too_large", "The request body is too large."),
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):
        # (too many parameters or files: Django refuses to read the request any further)
        return Response(
            error_body("bad_request", f"The request was refused: {exc}"),
            status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, RecursionError):
        # Only the JSON parser recurses on caller input before a view runs.
        return Response(
            error_body("parse_error", "The JSON body is nested too deeply."),
            status.HTTP_400_BAD_REQUEST,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled API error", exc_info=exc)
        return Response(
            error_body("internal_error", "Internal error."), status.HTTP_500_INTERNAL_SERVER_ERROR
        )
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("validation_error", "Invalid input.", _flatten(detail))
        return response
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
    message = str(getattr(exc, "detail", exc))
    response.data = error_body(code, message)
    return response


def _flatten(detail: object) -> object:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def json_400(request, exception=None) -> JsonResponse:  # noqa: ANN001
    # (a Host header not in ALLOWED_HOSTS, a request Django refuses before any view)
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def json_403(request, exception=None) -> JsonResponse:  # noqa: ANN001
    return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)


def json_404(request, exception=None) -> JsonResponse:  # noqa: ANN001
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_500(request) -> JsonResponse:  # noqa: ANN001
    return JsonResponse(error_body("internal_error", "Internal error."), status=500)
