"""The channel registry: every channel is declared here once, with what the rest of the
platform needs to know of it (its legacy name, how a recipient is checked and written, how it
is masked, which transports carry it). The API, masking, templates, the legacy import and the
admin read it; adding a channel is one declaration (and its transport module)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator


class InvalidRecipient(ValueError):
    """The recipient cannot be a recipient of this channel (the message says why)."""


class UnknownChannel(KeyError):
    pass


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    label: str
    # the old gateway's name for it (its API and export say "mail" for email)
    legacy_alias: str
    # the recipient as stored and sent, or InvalidRecipient
    normalise: Callable[[str], str]
    # the recipient as logs, admin lists and legacy answers show it
    mask: Callable[[str], str]
    # the transports that can carry it (the channels issue adds providers per kind)
    transport_kinds: tuple[str, ...] = ()
    # its template bodies are HTML (escaped when rendered)
    html_bodies: bool = False
    # a message of the channel needs a subject (an email); others may have one (a push's
    # title, a chat message's first line) or drop it (an SMS)
    needs_subject: bool = False

    @property
    def sendable(self) -> bool:
        """The platform can deliver it today (a transport is registered)."""
        return bool(self.transport_kinds)


def mask_opaque(value: str) -> str:
    return value[:2] + "***" if len(value) > 2 else "***"


def mask_email(address: str) -> str:
    local, sep, domain = address.partition("@")
    if not sep:
        return mask_opaque(address)
    return f"{local[:1]}***@{domain}"


def mask_mobile(mobile: str) -> str:
    if len(mobile) < 8:
        return mask_opaque(mobile)
    return f"{mobile[:3]}****{mobile[-4:]}"


_EMAIL = EmailValidator()
MAX_EMAIL_CHARS = 254


def normalise_email(value: str) -> str:
    """An address as SMTP takes it: trimmed, its domain in lower case."""
    address = value.strip()
    if len(address) > MAX_EMAIL_CHARS:
        raise InvalidRecipient(f"An email address has at most {MAX_EMAIL_CHARS} characters.")
    try:
        _EMAIL(address)
    except DjangoValidationError:
        raise InvalidRecipient("Enter a valid email address.") from None
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


# numbers without a country code are read as the old gateway's callers wrote them (China)
DEFAULT_REGION = "CN"


def normalise_mobile(value: str) -> str:
    """A mobile number in E.164 (`+8613800138000`), as SMS providers take it."""
    text = value.strip()
    if not text or len(text) > 32:
        raise InvalidRecipient("Enter a mobile number, e.g. +8613800138000.")
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise InvalidRecipient("Enter a mobile number, e.g. +8613800138000.") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidRecipient("This is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_DEVICE_TOKEN = re.compile(r"[\x21-\x7e]{8,4096}")


def normalise_device_token(value: str) -> str:
    """A push token: 8 to 4,096 printable ASCII characters, no spaces."""
    token = value.strip()
    if not _DEVICE_TOKEN.fullmatch(token):
        raise InvalidRecipient("A device token is 8 to 4,096 printable ASCII characters.")
    return token


_PROVIDER_NAME = re.compile(r"[-a-zA-Z0-9_]{1,64}")


def normalise_provider_name(value: str) -> str:
    """A chat destination: the name of one of the tenant's chat providers (a slug)."""
    name = value.strip()
    if not _PROVIDER_NAME.fullmatch(name):
        raise InvalidRecipient(
            "A chat message goes to one of your chat providers: give its name (letters, digits, "
            "- and _)."
        )
    return name


# (no "/": the user id is one segment of /v2/inbox/<recipient>)
_INBOX_USER = re.compile(r"[\x21-\x2e\x30-\x7e]{1,255}")


def normalise_inbox_user(value: str) -> str:
    """An in-app recipient: the tenant's own user id, 1 to 255 printable ASCII characters
    (no "/")."""
    user = value.strip()
    if not _INBOX_USER.fullmatch(user):
        raise InvalidRecipient(
            "An in-app recipient is your user id: 1 to 255 printable ASCII characters, no "
            "spaces or slashes."
        )
    return user


_REGISTRY: dict[str, ChannelSpec] = {}


def register(spec: ChannelSpec) -> ChannelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"channel {spec.name!r} is declared twice")
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> ChannelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownChannel(name) from None


def all_channels() -> list[ChannelSpec]:
    return list(_REGISTRY.values())


def sendable_names() -> list[str]:
    return [spec.name for spec in _REGISTRY.values() if spec.sendable]


def from_legacy(alias: str) -> ChannelSpec:
    """The channel the old gateway called `alias` (its own name works too)."""
    for spec in _REGISTRY.values():
        if alias in (spec.legacy_alias, spec.name):
            return spec
    raise UnknownChannel(alias)


def choices() -> list[tuple[str, str]]:
    return [(spec.name, spec.label) for spec in _REGISTRY.values()]


def mask_recipient(channel: str, recipient: str) -> str:
    spec = _REGISTRY.get(channel)
    return spec.mask(recipient) if spec is not None else mask_opaque(recipient)


EMAIL = register(
    ChannelSpec(
        name="email",
        label="Email",
        legacy_alias="mail",
        normalise=normalise_email,
        mask=mask_email,
        transport_kinds=("smtp", "anymail"),
        html_bodies=True,
        needs_subject=True,
    )
)
SMS = register(
    ChannelSpec(
        name="sms",
        label="SMS",
        legacy_alias="sms",
        normalise=normalise_mobile,
        mask=mask_mobile,
        transport_kinds=("http", "aliyun", "twilio"),
    )
)
PUSH = register(
    ChannelSpec(
        name="push",
        label="Push",
        legacy_alias="push",
        normalise=normalise_device_token,
        mask=mask_opaque,
        transport_kinds=("http", "fcm", "webpush"),
    )
)
CHAT = register(
    ChannelSpec(
        name="chat",
        label="Chat (team robots and webhooks)",
        legacy_alias="chat",
        normalise=normalise_provider_name,
        # a provider's name is no personal data: shown as it is
        mask=lambda name: name,
        transport_kinds=("slack", "dingtalk", "wecom", "feishu"),
    )
)
INAPP = register(
    ChannelSpec(
        name="inapp",
        label="In-app inbox",
        legacy_alias="inapp",
        normalise=normalise_inbox_user,
        mask=mask_opaque,
        transport_kinds=("inbox",),
    )
)

# for the OpenAPI schema's enum names (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"])
CHANNEL_CHOICES = [spec.name for spec in all_channels()]
SENDABLE_CHANNEL_CHOICES = sendable_names()
