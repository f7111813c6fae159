"""The legacy `/gateway/*.do` endpoints: one thin view that routes by path and method exactly
as the old gateway did, then forwards the call (tenant on stage `legacy`) or answers it
natively (stage `new`)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from compat import native, proxy
from compat.protocol import (
    CONTENT_TYPE,
    SYSTEM_ERROR,
    LegacyError,
    error_answer,
    parse_params,
    parse_query,
)
from notify.tenants.models import Tenant

logger = logging.getLogger(__name__)

ROUTES = {
    "/gateway/sms/send.do": "POST",
    "/gateway/sms/batch_send.do": "POST",
    "/gateway/mail/send.do": "POST",
    "/gateway/push/send.do": "POST",
    "/gateway/message/status.do": "GET",
    "/gateway/message/detail.do": "GET",
    "/gateway/template/get.do": "GET",
}


def _empty(status: int) -> HttpResponse:
    response = HttpResponse(status=status)
    # the old gateway's 404/405 carry no Content-Type, and a Content-Length of 0
    del response["Content-Type"]
    response["Content-Length"] = "0"
    return response


def _json(body: bytes, status: int = 200, content_type: str | None = CONTENT_TYPE) -> HttpResponse:
    response = HttpResponse(body, status=status)
    response["Content-Length"] = str(len(body))
    if content_type:
        response["Content-Type"] = content_type
    else:
        del response["Content-Type"]
    return response


def _raw_body(request: HttpRequest) -> bytes | None:
    """The body by its Content-Length (a chunked body is not read, as by the old gateway);
    None when it is larger than LEGACY_MAX_BODY_BYTES."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    if length > settings.LEGACY_MAX_BODY_BYTES:
        return None
    return request.read(length)


def _serve_natively(app_key: str) -> bool:
    """Whether the app's tenant is served here. Its stage is read afresh on every call (never
    from a process's cache): a stage change takes effect at once in every process."""
    if not settings.LEGACY_GATEWAY_URL:
        return True
    if not native.storable(app_key):
        return False
    stage = Tenant.objects.filter(app_key=app_key).values_list("stage", flat=True).first()
    return stage == Tenant.Stage.NEW


@csrf_exempt
def gateway(request: HttpRequest, path: str) -> HttpResponse:
    """One legacy call; `path` as the client sent it (compat.middleware)."""
    method = ROUTES.get(path)
    if method is None:
        return _empty(404)
    if request.method != method:
        return _empty(405)
    body = _raw_body(request) if method == "POST" else b""
    if body is None:
        return _json(SYSTEM_ERROR)
    # (WSGI gives the query as sent, each byte one character, as the old gateway read it)
    query = request.META.get("QUERY_STRING", "")
    params = parse_params(body) if method == "POST" else parse_query(query)
    app_key = params.get("app_key", "")
    try:
        natively = _serve_natively(app_key)
    except Exception:  # noqa: BLE001 - the database is down: the legacy answer, not a 500
        logger.exception("legacy call failed on %s: stage lookup", path)
        return _json(SYSTEM_ERROR)
    if not natively:
        try:
            upstream = proxy.forward(
                method, path, query, body, request.META.get("CONTENT_TYPE", "")
            )
        except Exception:  # noqa: BLE001 - whatever failed, the caller gets the legacy answer
            logger.exception("legacy call failed on %s: proxy", path)
            return _json(SYSTEM_ERROR)
        if upstream.status in (404, 405):
            return _empty(upstream.status)
        return _json(upstream.body, upstream.status, upstream.content_type)
    try:
        answer = native.handle(path, params, native.find_tenant(app_key))
    except LegacyError as error:
        answer = error_answer(error)
    except Exception:  # noqa: BLE001 - whatever failed, the caller gets the legacy answer
        logger.exception("legacy call failed on %s", path)
        answer = SYSTEM_ERROR
    return _json(answer)
