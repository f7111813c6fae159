"""One-click unsubscribe for bulk email (RFC 8058, as Gmail and Yahoo require of bulk
senders): a batch's email carries `List-Unsubscribe: <https://…/v2/unsubscribe/<token>>` and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click`. The token is signed (SECRET_KEY, its own
salt) and names the tenant, the recipient and the message's category; a POST to it opts the
recipient out of that category (a Preference row), which every later send honours (critical
messages aside). Nothing else can be done with it."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from notify.messaging.models import Preference

SALT = "notify.messaging.unsubscribe"


@dataclass(frozen=True)
class Unsubscribe:
    tenant_id: int
    channel: str
    recipient: str
    category: str


def token_for(tenant_id: int, channel: str, recipient: str, category: str) -> str:
    return signing.dumps([tenant_id, channel, recipient, category], salt=SALT, compress=True)


def read_token(token: str) -> Unsubscribe | None:
    """What a token this platform signed says, or None (forged, altered, not one)."""
    try:
        value = signing.loads(token, salt=SALT)
    except (signing.BadSignature, ValueError, UnicodeError):
        return None
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not isinstance(value[0], int)
        or not all(isinstance(part, str) for part in value[1:])
    ):
        return None
    return Unsubscribe(*value)


def list_unsubscribe_headers(
    tenant_id: int, channel: str, recipient: str, category: str
) -> dict[str, str]:
    """The headers of a bulk email, or none when the platform's public URL is not set."""
    base = settings.NOTIFY_PUBLIC_URL.rstrip("/")
    if not base or channel != "email":
        return {}
    url = f"{base}/v2/unsubscribe/{token_for(tenant_id, channel, recipient, category)}"
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def opt_out(request: Unsubscribe) -> None:
    """The recipient opted out of the category (all of the tenant's email when it has none);
    once or many times, the same."""
    try:
        with transaction.atomic():
            Preference.all_tenants.update_or_create(
                tenant_id=request.tenant_id,
                channel=request.channel,
                recipient=request.recipient,
                category=request.category,
                defaults={"opted_out": True, "updated_at": timezone.now()},
            )
    except IntegrityError:
        pass  # opted out meanwhile
