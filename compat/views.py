"""The legacy `/gateway/*.do` endpoints: one thin view that routes by path and method exactly
as the old gateway did, then forwards the call (tenant on stage `legacy`) or answers it
natively (stage `new`)."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from compat import native, out_ids, proxy, routing, shadow
from compat.protocol import (
    CONTENT_TYPE,
    SYSTEM_ERROR,
    LegacyError,
    error_answer,
    parse_params,
    parse_query,
)
from notify.rollout import metrics
from notify.rollout.models import PathMetric
from notify.rollout.routing import Route

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


@csrf_exempt
def gateway(request: HttpRequest, path: str) -> HttpResponse:
    """One legacy call; `path` as the client sent it (compat.middleware)."""
    method = ROUTES.get(path)
    if method is None:
        return _empty(404)
    # (the method as sent: Django upper-cases it, the old gateway's server compared it as is)
    if request.META.get("REQUEST_METHOD") != method:
        return _empty(405)
    body = _raw_body(request) if method == "POST" else b""
    if body is None:
        return _json(SYSTEM_ERROR)
    # (WSGI gives the query as sent, each byte one character, as the old gateway read it)
    query = request.META.get("QUERY_STRING", "")
    params = parse_params(body) if method == "POST" else parse_query(query)
    if not settings.LEGACY_GATEWAY_URL:
        # no old gateway (any more): every call is the platform's
        return _json(_native_answer(path, params))
    started = time.monotonic()
    try:
        decision = routing.decide(path, params)
    except Exception:  # noqa: BLE001 - the database is down: the legacy answer, not a 500
        logger.exception("legacy call failed on %s: routing", path)
        return _json(SYSTEM_ERROR)
    tenant_id = decision.stage.tenant_id if decision.stage is not None else None
    if decision.route == Route.NEW:
        response = _json(_native_answer(path, params, tenant_id))
    elif decision.route == routing.BUSY:
        response = _json(SYSTEM_ERROR)
    else:
        response = _proxied(request, path, query, body, params, decision)
    if decision.stage is not None:
        _record_metrics(decision, params, response, started)
    return response


def _record_metrics(
    decision: routing.Decision, params: dict[str, str], response: HttpResponse, started: float
) -> None:
    code = shadow.answer_code(response.content)
    # (a template named by a call refused before the template checks is no metrics dimension)
    tpl_id = "" if code in shadow.UNCOMPARED_CODES or code == 10001 else params.get("tpl_id", "")
    metrics.recorder.record(
        decision.stage.tenant_id,
        native.to_db(tpl_id),
        PathMetric.Path.NEW if decision.route == Route.NEW else PathMetric.Path.LEGACY,
        response.status_code != 200 or code == 50000,
        (time.monotonic() - started) * 1000,
    )


def _native_answer(path: str, params: dict[str, str], tenant_id: int | None = None) -> bytes:
    try:
        tenant = native.find_tenant(params.get("app_key", ""), tenant_id)
        return native.handle(path, params, tenant)
    except LegacyError as error:
        return error_answer(error)
    except Exception:  # noqa: BLE001 - whatever failed, the caller gets the legacy answer
        logger.exception("legacy call failed on %s", path)
        return SYSTEM_ERROR


def _proxied(
    request: HttpRequest,
    path: str,
    query: str,
    body: bytes,
    params: dict[str, str],
    decision: routing.Decision,
) -> HttpResponse:
    try:
        upstream = proxy.forward(
            method_of(path), path, query, body, request.META.get("CONTENT_TYPE", "")
        )
    except Exception:  # noqa: BLE001 - whatever failed, the caller gets the legacy answer
        logger.exception("legacy call failed on %s: proxy", path)
        upstream = None
    if decision.held_out_id and decision.stage is not None:
        code = shadow.answer_code(upstream.body) if upstream is not None else None
        try:
            out_ids.settle(
                decision.stage.tenant_id,
                path,
                decision.held_out_id,
                code,
                upstream.body if upstream is not None else b"",
            )
        except Exception:  # noqa: BLE001 - the out_id stays the old gateway's: safe
            logger.exception("out_id not settled on %s", path)
    if upstream is None:
        return _json(SYSTEM_ERROR)
    if upstream.status in (404, 405):
        return _empty(upstream.status)
    if decision.route == Route.SHADOW and decision.stage is not None and upstream.status == 200:
        shadow.record(decision.stage.tenant_id, path, params, upstream.body)
    return _json(upstream.body, upstream.status, upstream.content_type)


def method_of(path: str) -> str:
    return ROUTES[path]
