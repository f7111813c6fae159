"""`POST /v2/receipts/http/<channel>` and `POST /v2/receipts/providers/<id>`: providers'
delivery reports. The first is the platform's own generic HTTP provider of a channel
(docs/http-providers.md); the second a tenant's provider, in that provider kind's own format
and verified by its own scheme (the generic protocol's HMAC, Twilio's X-Twilio-Signature,
Aliyun's token…). A provider, not a tenant, calls them: no API key. Every answer is JSON; bad
input is a 4xx, never a 500; a report moves only that provider's messages of its tenant."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from notify.api.errors import error_body
from notify.channels.base import Inbound, Receipt, ReceiptBatch, ReceiptRefused
from notify.channels.http import parse_report
from notify.channels.models import Provider
from notify.channels.providers import KINDS
from notify.channels.services import stored_secrets
from notify.messaging.receipts import record_reports

logger = logging.getLogger(__name__)

# the setting holding each channel's shared secret
SECRET_SETTINGS = {"sms": "SMS_HTTP_SECRET", "push": "PUSH_HTTP_SECRET"}
# a report request is small (Aliyun batches at most 100 reports)
MAX_REPORT_BYTES = 256 * 1024


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


@csrf_exempt
def http_receipt(request: HttpRequest, channel: str) -> JsonResponse:
    if channel not in SECRET_SETTINGS:
        return _error(404, "not_found", f"No HTTP provider channel {channel[:32]!r}.")
    secret = getattr(settings, SECRET_SETTINGS[channel], "")
    return _receive(
        request,
        channel,
        lambda inbound: parse_report(secret, SECRET_SETTINGS[channel], inbound),
    )


@csrf_exempt
def provider_receipt(request: HttpRequest, provider_id: int) -> JsonResponse:
    """`POST /v2/receipts/providers/<id>`: a tenant's provider reports, in its kind's format,
    on the messages of that tenant it took."""
    provider = Provider.all_tenants.filter(pk=provider_id).first()
    kind = KINDS.get(provider.kind) if provider is not None else None
    secrets = stored_secrets(provider) if provider is not None else {}
    if provider is None or kind is None or not kind.has_receipts or not secrets:
        return _error(404, "not_found", "No such provider.")
    return _receive(
        request,
        provider.channel,
        lambda inbound: kind.receipts(inbound, dict(provider.config), secrets),
        tenant_id=provider.tenant_id,
        provider=provider.name,
    )


def _text(receipt: Receipt) -> bool:
    """Whether the report's strings are text a database can store (JSON lets a lone
    surrogate through)."""
    try:
        for value in (receipt.provider_message_id, receipt.error_code, receipt.error):
            value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in receipt.provider_message_id + receipt.error_code + receipt.error


def _receive(request: HttpRequest, channel: str, parse, **scope: object) -> JsonResponse:  # noqa: ANN001
    if request.method != "POST":
        response = _error(405, "method_not_allowed", "Delivery reports are POSTed.")
        response["Allow"] = "POST"
        return response
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    try:
        body = b"" if length > MAX_REPORT_BYTES else request.body
    except RequestDataTooBig:
        body = b""
        length = MAX_REPORT_BYTES + 1
    if length > MAX_REPORT_BYTES or len(body) > MAX_REPORT_BYTES:
        return _error(400, "parse_error", f"A report has at most {MAX_REPORT_BYTES} bytes.")
    inbound = Inbound(
        url=request.build_absolute_uri(), headers=request.headers, body=body, method="POST"
    )
    try:
        batch: ReceiptBatch = parse(inbound)
    except ReceiptRefused as exc:
        if exc.status == 401:
            logger.warning("%s delivery report refused: bad or missing signature", channel)
            return _error(401, "authentication_failed", str(exc))
        return _error(400, "parse_error", str(exc))
    if not all(_text(receipt) for receipt in batch.receipts):
        return _error(400, "parse_error", "A report's text is not valid Unicode.")
    record_reports(channel, batch.receipts, **scope)
    return JsonResponse(batch.answer, json_dumps_params={"ensure_ascii": False})
