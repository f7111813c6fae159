"""Email through an ESP's HTTP API with django-anymail: the platform's own email when
EMAIL_BACKEND is an anymail backend, and a tenant's own ESP account (provider kind `anymail`).

Sending: anymail's backend for the ESP, given the tenant's credentials explicitly (never the
platform's settings). Its HTTP goes to the ESP's own API host only (an allowlist per ESP; any
host only with ALLOW_PRIVATE_TARGETS, for local stand-ins), so a tenant cannot aim it elsewhere.
The ESP's acceptance is not delivery: the message stays `sent` with the ESP's message id until
its tracking webhook says more.

Delivery reports: the ESP's tracking webhook, verified and parsed by anymail's own view for
that ESP (basic auth with the provider's `webhook_secret`, plus the ESP's signature where it
signs: Mailgun's HMAC with its webhook signing key). `delivered` delivers; a bounce or a
rejection fails (a hard one suppresses the recipient); a complaint or an unsubscribe
suppresses the recipient (the message stays as it was)."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailRecipientsRefused,
    AnymailWebhookValidationFailure,
)
from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.core.validators import validate_email
from django.http import HttpRequest
from django.utils.module_loading import import_string

from notify.channels.base import (
    ConfigError,
    Inbound,
    ProviderKind,
    Receipt,
    ReceiptBatch,
    ReceiptRefused,
    Transport,
    TransportError,
    note_http_status,
    usable_url,
)
from notify.headers import header_problem


class Esp:
    """What the platform needs to know of one ESP anymail supports."""

    def __init__(
        self,
        backend: str,
        tracking_view: str,
        api_hosts: frozenset[str],
        credentials: dict[str, str],
        webhook_credentials: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        self.backend, self.tracking_view, self.api_hosts = backend, tracking_view, api_hosts
        self.credentials = credentials
        self.webhook_credentials = webhook_credentials or {}
        self.options = options or {}


ESPS: dict[str, Esp] = {
    "mailgun": Esp(
        "anymail.backends.mailgun.EmailBackend",
        "anymail.webhooks.mailgun.MailgunTrackingWebhookView",
        frozenset({"api.mailgun.net", "api.eu.mailgun.net"}),
        {"api_key": "the Mailgun API key"},
        {"webhook_signing_key": "the HTTP webhook signing key (Mailgun signs each event)"},
        {"sender_domain": "the sending domain, when not the sender address's own"},
    ),
    "postmark": Esp(
        "anymail.backends.postmark.EmailBackend",
        "anymail.webhooks.postmark.PostmarkTrackingWebhookView",
        frozenset({"api.postmarkapp.com"}),
        {"server_token": "the Postmark server token"},
        options={"message_stream": "the message stream, default outbound"},
    ),
    "sendgrid": Esp(
        "anymail.backends.sendgrid.EmailBackend",
        "anymail.webhooks.sendgrid.SendGridTrackingWebhookView",
        frozenset({"api.sendgrid.com"}),
        {"api_key": "the SendGrid API key"},
    ),
}

# anymail's events: what each means for the message and its recipient
DELIVERED = frozenset({EventType.DELIVERED})
FAILED = frozenset({EventType.BOUNCED, EventType.REJECTED, EventType.FAILED})
SUPPRESSES = frozenset({EventType.COMPLAINED, EventType.UNSUBSCRIBED})
HARD_REASONS = frozenset(
    {RejectReason.BOUNCED, RejectReason.INVALID, RejectReason.SPAM, RejectReason.UNSUBSCRIBED}
)


def receipt_of(event: AnymailTrackingEvent) -> Receipt | None:
    """The delivery report an anymail tracking event makes, or None (opened, clicked,
    queued, deferred…: not how the message ended)."""
    message_id = (event.message_id or "")[:255]
    if not message_id:
        return None
    code = str(event.reject_reason or event.event_type)[:64]
    text = f"{event.event_type}: {event.description or event.mta_response or ''}".strip(": ")
    if event.event_type in DELIVERED:
        return Receipt(message_id, "delivered")
    if event.event_type in FAILED:
        hard = event.event_type == EventType.BOUNCED or event.reject_reason in HARD_REASONS
        return Receipt(message_id, "failed", code, text[:1000], bad_recipient=hard)
    if event.event_type in SUPPRESSES:
        return Receipt(message_id, "suppress", str(event.event_type), text[:1000])
    return None


def send_errors(exc: Exception, label: str) -> TransportError:
    """An anymail failure as the failure kind it is."""
    note_http_status(getattr(exc, "status_code", None))
    if isinstance(exc, AnymailRecipientsRefused):
        return TransportError(
            f"{label} refused the recipient: not retried", permanent=True, kind="bad_recipient"
        )
    status = getattr(exc, "status_code", None)
    if isinstance(exc, AnymailAPIError) and status is None:
        return TransportError(
            f"{label} unreachable: retried later", permanent=False, kind="provider_down"
        )
    if isinstance(exc, AnymailAPIError) and status == 429:
        return TransportError(
            f"{label} rate limit (HTTP 429): retried later",
            permanent=False,
            kind="throttled",
            code="429",
        )
    if isinstance(exc, AnymailAPIError) and status >= 500:
        return TransportError(
            f"{label} failed (HTTP {status}): retried later",
            permanent=False,
            kind="provider_down",
            code=str(status),
        )
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    return TransportError(
        f"{label} refused the message ({detail}): not retried (check the provider's "
        "credentials, sender and domain)",
        permanent=True,
        kind="permanent",
        code=str(status or ""),
        provider_fault=status in (401, 403),
    )


def _email_address(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return len(value) <= 254 and not header_problem(value)


def _api_url_allowed(esp: Esp, url: str) -> bool:
    if settings.ALLOW_PRIVATE_TARGETS:
        return usable_url(url)
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.hostname in esp.api_hosts and parts.port is None


class AnymailKind(ProviderKind):
    name = "anymail"
    label = "Email service provider's API (django-anymail: Mailgun, Postmark, SendGrid)"
    channels = ("email",)
    config_fields = {
        "esp": f"one of {', '.join(sorted(ESPS))}",
        "from_email": "the sender address (its domain verified at the ESP)",
        "options": "the ESP's options (Mailgun: sender_domain; Postmark: message_stream)",
        "api_url": "default: the ESP's own; another of the ESP's API hosts (e.g. Mailgun EU)",
    }
    secret_fields = {
        "api_key": "Mailgun, SendGrid",
        "server_token": "Postmark",
        "webhook_secret": "`user:password` for the tracking webhook's basic auth",
        "webhook_signing_key": "Mailgun",
    }
    # the settings anymail must never take from the platform's ANYMAIL for a tenant
    credential_settings: ClassVar[tuple[str, ...]] = ("api_key", "server_token")

    def clean(self, config: dict[str, Any], secrets: dict[str, Any]) -> tuple[dict, dict]:
        errors = self.unknown_fields(config, secrets)
        esp = ESPS.get(config["esp"]) if isinstance(config.get("esp"), str) else None
        if esp is None:
            raise ConfigError({"config.esp": f"One of {', '.join(sorted(ESPS))}.", **errors})
        sender = config.get("from_email")
        if not isinstance(sender, str) or not _email_address(sender):
            errors["config.from_email"] = "The sender's email address."
        options = config.get("options", {})
        if not isinstance(options, dict) or not all(
            k in esp.options and isinstance(v, str) and 0 < len(v) <= 255
            for k, v in options.items()
        ):
            errors["config.options"] = (
                f"An object of: {', '.join(esp.options) or 'nothing for this ESP'}."
            )
        api_url = config.get("api_url", "")
        if api_url and (not isinstance(api_url, str) or not _api_url_allowed(esp, api_url)):
            errors["config.api_url"] = (
                f"An https URL on the ESP's own API host ({', '.join(sorted(esp.api_hosts))})."
            )
        wanted = {**esp.credentials, **esp.webhook_credentials, "webhook_secret": ""}
        for field in set(secrets) - set(wanted):
            errors[f"secrets.{field}"] = f"Not a {config['esp']} secret."
        for field in esp.credentials:
            if not isinstance(secrets.get(field), str) or not 8 <= len(secrets[field]) <= 500:
                errors[f"secrets.{field}"] = "Required (8 to 500 characters)."
        for field in (*esp.webhook_credentials, "webhook_secret"):
            value = secrets.get(field, "")
            if not isinstance(value, str) or len(value) > 500:
                errors[f"secrets.{field}"] = "At most 500 characters."
        if secrets.get("webhook_secret") and ":" not in secrets["webhook_secret"]:
            errors["secrets.webhook_secret"] = "`user:password`."
        if errors:
            raise ConfigError(errors)
        cleaned = {"esp": config["esp"], "from_email": sender, "options": options}
        if api_url:
            cleaned["api_url"] = api_url
        return cleaned, {k: v for k, v in secrets.items() if k in wanted and v}

    def transport(self, channel: str, config: dict, secrets: dict) -> Transport:
        from notify.channels.email import EmailTransport

        esp = ESPS[config["esp"]]
        # every setting given explicitly: nothing falls back to the platform's ANYMAIL
        options = {**{k: None for k in esp.options}, **config.get("options", {})}
        options = {k: v for k, v in options.items() if v is not None}
        credentials = {k: secrets[k] for k in esp.credentials}
        if config.get("api_url"):
            options["api_url"] = config["api_url"]

        def connect():  # noqa: ANN202
            return get_connection(esp.backend, fail_silently=False, **credentials, **options)

        return EmailTransport(
            connect=connect, from_email=config["from_email"], label=f"{config['esp']} API"
        )

    has_receipts = True

    def receipts(self, inbound: Inbound, config: dict, secrets: dict) -> ReceiptBatch:
        esp = ESPS.get(config["esp"]) if isinstance(config.get("esp"), str) else None
        if esp is None or not secrets.get("webhook_secret"):
            raise ReceiptRefused(
                401,
                "Set this provider's webhook_secret (`user:password`) and give the ESP this "
                "receipts URL with those credentials (https://user:password@…).",
            )
        view_class = import_string(esp.tracking_view)
        kwargs = {"webhook_secret": secrets["webhook_secret"]}
        for field in esp.webhook_credentials:
            # (a signing ESP with no key given: a key nobody has, so nothing verifies)
            kwargs[field] = secrets.get(field) or "-" * 32
        if "webhook_signing_key" in esp.webhook_credentials:
            kwargs["api_key"] = secrets.get("api_key", "")
        view = view_class(**kwargs)
        request = _as_django_request(inbound)
        try:
            view.run_validators(request)
        except AnymailWebhookValidationFailure:
            raise ReceiptRefused(401, _NOT_SIGNED.format(esp=config["esp"])) from None
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeError):
            # (a body the ESP's validator cannot even read: not the ESP's)
            raise ReceiptRefused(400, f"Not a {config['esp']} tracking webhook.") from None
        try:
            events = view.parse_events(request)
        except (AnymailError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReceiptRefused(400, f"Not a {config['esp']} tracking webhook.") from exc
        receipts = [r for r in (receipt_of(event) for event in events) if r is not None]
        return ReceiptBatch(receipts)


_NOT_SIGNED = (
    "Not signed for this provider: the {esp} webhook needs this provider's basic auth "
    "(webhook_secret) and the ESP's own signature."
)


def _as_django_request(inbound: Inbound) -> HttpRequest:
    """The report as the Django request anymail's webhook views read."""
    request = HttpRequest()
    request.method = inbound.method
    request._body = inbound.body  # noqa: SLF001 - (how a request's body is given)
    parts = urlsplit(inbound.url)
    request.path = request.path_info = parts.path
    request.META = {
        "CONTENT_TYPE": inbound.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(inbound.body)),
        "QUERY_STRING": parts.query,
        "SERVER_NAME": parts.hostname or "",
        "SERVER_PORT": str(parts.port or (443 if parts.scheme == "https" else 80)),
        "wsgi.url_scheme": parts.scheme,
    }
    for name, value in inbound.headers.items():
        key = "HTTP_" + name.upper().replace("-", "_")
        if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            request.META[key] = value
    request._set_content_type_params(request.META)  # noqa: SLF001 - (as WSGIRequest does)
    return request
