"""`POST /v2/receipts/http/<channel>` and `POST /v2/receipts/providers/<id>`: the generic HTTP
providers' delivery reports (docs/http-providers.md), of the platform's provider for a channel
and of a tenant's own. A provider, not a tenant, calls them: no API key, the request is signed
with that provider's shared secret. Every answer is JSON; bad input is a 4xx, never a 500."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from notify.api.errors import error_body
from notify.channels.http import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_valid
from notify.channels.models import Provider
from notify.messaging.receipts import REPORTED_STATUSES, record_receipt

logger = logging.getLogger(__name__)

# the setting holding each channel's shared secret
SECRET_SETTINGS = {"sms": "SMS_HTTP_SECRET", "push": "PUSH_HTTP_SECRET"}
# a report is a small JSON object
MAX_REPORT_BYTES = 64 * 1024
MAX_PROVIDER_ID_CHARS = 255


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


@csrf_exempt
def http_receipt(request: HttpRequest, channel: str) -> JsonResponse:
    if channel not in SECRET_SETTINGS:
        return _error(404, "not_found", f"No HTTP provider channel {channel[:32]!r}.")
    secret = getattr(settings, SECRET_SETTINGS[channel], "")
    return _receive(request, channel, secret, SECRET_SETTINGS[channel])


@csrf_exempt
def provider_receipt(request: HttpRequest, provider_id: int) -> JsonResponse:
    """`POST /v2/receipts/providers/<id>`: a tenant's own generic HTTP provider reports,
    signed with that provider's secret, on the messages of that tenant it took."""
    provider = Provider.all_tenants.filter(pk=provider_id, kind="http").first()
    secrets = _secrets_of(provider)
    if provider is None or not secrets.get("secret"):
        return _error(404, "not_found", "No such provider.")
    return _receive(
        request,
        provider.channel,
        secrets["secret"],
        "the provider's secret",
        tenant_id=provider.tenant_id,
        provider=provider.name,
    )


def _secrets_of(provider: Provider | None) -> dict:
    if provider is None or not provider.secrets:
        return {}
    try:
        value = json.loads(provider.secrets)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _receive(
    request: HttpRequest, channel: str, secret: str, secret_hint: str, **scope: object
) -> JsonResponse:
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
    if not signature_valid(
        secret,
        request.headers.get(TIMESTAMP_HEADER, ""),
        request.headers.get(SIGNATURE_HEADER, ""),
        body,
    ):
        # (no secret configured: nothing can be verified, every report is refused)
        logger.warning("%s delivery report refused: bad or missing signature", channel)
        return _error(
            401,
            "authentication_failed",
            f"Sign the report with {secret_hint} (X-Notify-Timestamp within 300 s, "
            "X-Notify-Signature: v1=<hex HMAC-SHA256 of '<timestamp>.<body>'>).",
        )
    report, problem = _parse(body)
    if report is None:
        return _error(400, "parse_error", problem)
    record_receipt(channel, **report, **scope)
    return JsonResponse({"ok": True})


def _parse(body: bytes) -> tuple[dict | None, str]:
    """The report's fields for record_receipt, or None and what is wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None, "The body is not JSON."
    if not isinstance(data, dict):
        return None, "The body is not a JSON object."
    message_id = data.get("message_id")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_PROVIDER_ID_CHARS:
        return None, f"`message_id` is a string of 1 to {MAX_PROVIDER_ID_CHARS} characters."
    status = data.get("status")
    if not isinstance(status, str) or status not in REPORTED_STATUSES:
        return None, "`status` is 'delivered' or 'failed'."
    # (absent or null: none given)
    error_code = "" if data.get("error_code") is None else data["error_code"]
    error = "" if data.get("error") is None else data["error"]
    if not isinstance(error_code, str) or not isinstance(error, str):
        return None, "`error_code` and `error` are strings."
    return {
        "provider_message_id": message_id,
        "status": status,
        "error_code": error_code,
        "error": error,
    }, ""
