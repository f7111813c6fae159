"""Views for /v2/messages: thin, one per operation, nested input/output serializers."""

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from notify.api.errors import ErrorOutput, error_body
from notify.api.serializers import KeptFieldsSerializer
from notify.api.validation import (
    IDEMPOTENCY_KEY_SCHEMA,
    PRINTABLE_TOKEN,
    PRIORITY_NAMES,
    TAG,
    DataField,
    LocaleField,
    MetadataField,
    header_safe,
    tags_field,
    unique_tags,
)
from notify.channels import registry
from notify.channels.base import MAX_PROVIDER_TIMEOUT, MIN_PROVIDER_TIMEOUT
from notify.messaging import cursors, selectors
from notify.messaging import requests as send_requests
from notify.messaging.attachments import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, Attachment
from notify.messaging.composition import (
    MAX_SUBJECT_CHARS,
    ComposeRequest,
    CompositionError,
    compose,
    compose_many,
)
from notify.messaging.ids import is_message_id
from notify.messaging.models import (
    Channel,
    Lane,
    Message,
    MessageEvent,
    MessageStatus,
    Priority,
    SendRequest,
)
from notify.messaging.services import (
    MessageDraft,
    NotCancellable,
    NotRetryable,
    cancel_message,
    create_batch,
    create_message,
    retry_message,
)
from templates_store import services as template_services

MAX_BODY_CHARS = 1_000_000
MAX_SCHEDULE_AHEAD = timedelta(days=365)
MAX_FALLBACKS = 3
LATER_OPTIONS = ("fallback", "deadline", "timeouts", "attachments", "tags", "metadata", "priority")
# later options whose default is not empty: left at it, they count as not given
LATER_DEFAULTS = {"priority": "normal"}


class FallbackSerializer(KeptFieldsSerializer):
    """A channel and a recipient to fall back to."""

    class Meta:
        ref_name = "FallbackInput"

    channel = serializers.ChoiceField(choices=registry.sendable_names())
    to = serializers.CharField(max_length=4096, validators=[header_safe])

    def validate(self, attrs: dict) -> dict:
        try:
            attrs["to"] = registry.get(attrs["channel"]).normalise(attrs["to"])
        except registry.InvalidRecipient as exc:
            raise ValidationError({"to": [str(exc)]}) from None
        return attrs


CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")


class AttachmentSerializer(KeptFieldsSerializer):
    """A file for an email: its name, its MIME type and its bytes in base64."""

    class Meta:
        ref_name = "AttachmentInput"

    filename = serializers.CharField(max_length=255, validators=[header_safe])
    content_type = serializers.CharField(max_length=255, default="application/octet-stream")
    content = serializers.CharField(
        help_text="The file's bytes, base64 (RFC 4648, standard alphabet)."
    )

    def validate_filename(self, value: str) -> str:
        if not value.isprintable() or any(c in value for c in '/\\"') or value in (".", ".."):
            raise ValidationError("A file name: printable, no slashes or quotes.")
        return value

    def validate_content_type(self, value: str) -> str:
        value = value.strip().lower()
        if not CONTENT_TYPE.fullmatch(value):
            raise ValidationError("A MIME type, e.g. application/pdf.")
        return value

    def validate_content(self, value: str) -> bytes:
        if len(value) > MAX_ATTACHMENT_BYTES * 4 // 3 + 4:
            raise ValidationError(f"At most {MAX_ATTACHMENT_BYTES} bytes.")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("Not base64.") from None


def attachments_field() -> serializers.ListField:
    return serializers.ListField(
        child=AttachmentSerializer(),
        required=False,
        default=list,
        max_length=MAX_ATTACHMENTS,
        help_text=f"Email only: at most {MAX_ATTACHMENTS} files, {MAX_ATTACHMENT_BYTES} bytes "
        "in all.",
    )


def checked_attachments(attrs: dict) -> dict[str, list[str]]:
    """What is wrong with the request's attachments (nothing: {})."""
    files = attrs.get("attachments") or []
    if not files:
        return {}
    if attrs["channel"] != "email":
        return {"attachments": ["Only an email has attachments."]}
    if sum(len(f["content"]) for f in files) > MAX_ATTACHMENT_BYTES:
        return {"attachments": [f"At most {MAX_ATTACHMENT_BYTES} bytes in all."]}
    return {}


def as_attachments(fields: dict) -> tuple[Attachment, ...]:
    return tuple(
        Attachment(f["filename"], f["content_type"], f["content"])
        for f in fields.get("attachments") or []
    )


class TimeoutsSerializer(KeptFieldsSerializer):
    """Deadline tiers, in seconds (after Courier's): `provider`, how long one call to a
    provider may take before failover moves to the next; `channel`, how long the message may
    keep trying on its channel before it fails there (and falls back); `message`, how long
    the whole message, fallbacks included, may take before it gives up."""

    class Meta:
        ref_name = "TimeoutsInput"

    provider = serializers.FloatField(
        min_value=MIN_PROVIDER_TIMEOUT, max_value=MAX_PROVIDER_TIMEOUT, required=False
    )
    channel = serializers.IntegerField(
        min_value=1, max_value=int(MAX_SCHEDULE_AHEAD.total_seconds()), required=False
    )
    message = serializers.IntegerField(
        min_value=1, max_value=int(MAX_SCHEDULE_AHEAD.total_seconds()), required=False
    )

    def validate(self, attrs: dict) -> dict:
        if "channel" in attrs and "message" in attrs and attrs["channel"] > attrs["message"]:
            raise ValidationError({"channel": ["At most the `message` timeout."]})
        return attrs


class MessageEventOutput(KeptFieldsSerializer):
    status = serializers.CharField()
    detail = serializers.CharField()
    at = serializers.DateTimeField(source="created_at")


class DeliveryAttemptOutput(KeptFieldsSerializer):
    number = serializers.IntegerField()
    outcome = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField()
    error_kind = serializers.CharField()
    error_code = serializers.CharField()
    latency_ms = serializers.IntegerField(allow_null=True)
    # the tenant's provider that took or refused it, by name (blank: the platform's own)
    provider = serializers.CharField()
    provider_message_id = serializers.CharField()
    http_status = serializers.IntegerField(allow_null=True)


class MessageOutput(KeptFieldsSerializer):
    id = serializers.CharField()
    status = serializers.CharField()
    channel = serializers.CharField()
    to = serializers.CharField(source="recipient")
    subject = serializers.CharField()
    error = serializers.CharField()
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)
    send_at = serializers.DateTimeField(allow_null=True)
    category = serializers.CharField()
    critical = serializers.BooleanField()
    priority = serializers.ChoiceField(choices=PRIORITY_NAMES, source="get_priority_display")
    tags = serializers.ListField(child=serializers.CharField())
    metadata = serializers.DictField()
    events = MessageEventOutput(many=True)
    delivery_attempts = DeliveryAttemptOutput(many=True)


class MessageListOutput(KeptFieldsSerializer):
    """The answer to a send to a list of recipients: one message each, under one batch id."""

    batch_id = serializers.CharField()
    count = serializers.IntegerField()
    messages = MessageOutput(many=True)


# recipients one `POST /v2/messages` may list (a batch takes up to 10,000)
MAX_LISTED_RECIPIENTS = 100


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": 4096},
            {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 4096},
                "minItems": 1,
                "maxItems": MAX_LISTED_RECIPIENTS,
            },
        ]
    }
)
class OneOrManyRecipients(serializers.Field):
    """`to`: one recipient (a string, kept a string) or a list of them (kept a list, its items
    checked by `recipients`)."""

    one = serializers.CharField(max_length=4096, validators=[header_safe])

    def recipients(self, data: list, normalise: Callable[[str], str]) -> list[str]:
        """The list's recipients checked and normalised, each once; every bad one named
        `to.<n>` in one ValidationError."""
        recipients, problems = [], {}
        for index, item in enumerate(data):
            try:
                if not isinstance(item, str):
                    raise ValidationError("Must be a string.")
                recipients.append(normalise(self.one.run_validation(item)))
            except ValidationError as exc:
                problems[f"to.{index}"] = exc.detail
            except registry.InvalidRecipient as exc:
                problems[f"to.{index}"] = [str(exc)]
        if problems:
            raise ValidationError(problems)
        return list(dict.fromkeys(recipients))

    def to_internal_value(self, data: Any) -> str | list[str]:
        if isinstance(data, str):
            return self.one.run_validation(data)
        if not isinstance(data, list):
            raise ValidationError("A recipient, or a list of recipients.")
        if not 1 <= len(data) <= MAX_LISTED_RECIPIENTS:
            raise ValidationError(f"A list of 1 to {MAX_LISTED_RECIPIENTS} recipients.")
        return list(data)  # (each item is checked with the channel's rules: `recipients`)

    def to_representation(self, value: Any) -> Any:
        return value


def request_fingerprint(fields: dict, later_options: tuple[str, ...] = ()) -> str:
    """What the caller asked for (not what it rendered to): a retry with the same key and the
    same request is recognised even after the template changed."""
    # (options added later count only when given: earlier requests keep their fingerprint)
    later = (*LATER_OPTIONS, *later_options)
    fields = {
        k: v for k, v in fields.items() if k not in later or (v and v != LATER_DEFAULTS.get(k))
    }
    payload = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def body_field() -> serializers.CharField:
    return serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=MAX_BODY_CHARS,
        trim_whitespace=False,
    )


# messages per page of GET /v2/messages: by default, and at most
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class MessageSummaryOutput(KeptFieldsSerializer):
    id = serializers.CharField()
    status = serializers.CharField()
    channel = serializers.CharField()
    to = serializers.CharField(source="recipient")
    subject = serializers.CharField()
    error = serializers.CharField()
    attempts = serializers.IntegerField()
    batch_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    send_at = serializers.DateTimeField(allow_null=True)
    sent_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)
    priority = serializers.ChoiceField(choices=PRIORITY_NAMES, source="get_priority_display")
    tags = serializers.ListField(child=serializers.CharField())
    metadata = serializers.DictField()


class Messages(APIView):
    """`GET`: the tenant's messages; `POST`: send one."""

    class FilterSerializer(KeptFieldsSerializer):
        class Meta:
            ref_name = "MessageListFilter"

        status = serializers.ChoiceField(choices=MessageStatus.choices, required=False)
        channel = serializers.ChoiceField(choices=Channel.choices, required=False)
        batch = serializers.RegexField(r"^[0-9]{1,18}$", required=False)
        tag = serializers.RegexField(TAG, max_length=64, required=False)
        created_after = serializers.DateTimeField(required=False)
        created_before = serializers.DateTimeField(required=False)
        cursor = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=cursors.MAX_CURSOR_CHARS,
            help_text="A page's position, from `next` or `previous`.",
        )
        limit = serializers.IntegerField(
            required=False,
            default=PAGE_SIZE,
            min_value=1,
            max_value=MAX_PAGE_SIZE,
            help_text=f"Messages per page (default {PAGE_SIZE}).",
        )

    class PageOutput(serializers.Serializer):
        class Meta:
            ref_name = "MessagePage"

        next = serializers.URLField(allow_null=True, help_text="The next page; null on the last.")
        previous = serializers.URLField(
            allow_null=True, help_text="The page before; null on the first."
        )
        results = MessageSummaryOutput(many=True)

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: PageOutput},
        operation_id="messages_list",
        summary="List messages, newest first, with filters and cursor pages",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = dict(filters.validated_data)
        cursor, limit = wanted.pop("cursor", ""), wanted.pop("limit")
        try:
            position = cursors.decode(cursor, str) if cursor else None
        except cursors.BadCursor as exc:
            raise ValidationError({"cursor": [str(exc)]}) from None
        if position is not None and not is_message_id(position.pk):
            raise ValidationError({"cursor": [cursors.INVALID_CURSOR]})
        found = cursors.page(selectors.list_messages(request.user, **wanted), position, limit)
        url = request.build_absolute_uri()

        def link(position: cursors.Position | None) -> str | None:
            if position is None:
                return None
            return replace_query_param(url, "cursor", cursors.encode(position))

        return Response(
            {
                "next": link(found.after),
                "previous": link(found.before),
                "results": MessageSummaryOutput(found.rows, many=True).data,
            }
        )

    class InputSerializer(KeptFieldsSerializer):
        class Meta:
            ref_name = "MessageCreateInput"

        # the channels the registry can deliver today
        channel = serializers.ChoiceField(choices=registry.sendable_names())
        to = OneOrManyRecipients(
            help_text=f"One recipient, or a list of up to {MAX_LISTED_RECIPIENTS} (one message "
            "each, answered as a list; more go through `/v2/messages/batch`)."
        )
        subject = serializers.CharField(
            max_length=MAX_SUBJECT_CHARS,
            validators=[header_safe],
            required=False,
            allow_blank=True,
            default="",
        )
        body = body_field()
        html = body_field()
        template = serializers.SlugField(max_length=100, required=False)
        data = DataField()
        locale = LocaleField()
        send_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
        category = serializers.SlugField(
            max_length=64, required=False, allow_blank=True, default=""
        )
        critical = serializers.BooleanField(required=False, default=False)
        priority = serializers.ChoiceField(
            choices=PRIORITY_NAMES,
            required=False,
            default="normal",
            help_text="Among the due messages waiting to be sent, a higher priority goes first.",
        )
        tags = tags_field()
        metadata = MetadataField()
        fallback = serializers.ListField(
            child=FallbackSerializer(),
            required=False,
            default=list,
            max_length=MAX_FALLBACKS,
            help_text="Where the message goes next when it fails on its channel (for good, or "
            'after its deadline), in order: e.g. [{"channel": "sms", "to": "+86…"}].',
        )
        deadline = serializers.DateTimeField(
            required=False,
            allow_null=True,
            default=None,
            help_text="Not sent by then: failed with this reason (and its fallback, if any, "
            "is sent).",
        )

        timeouts = TimeoutsSerializer(
            required=False,
            default=None,
            allow_null=True,
            help_text='Deadline tiers in seconds: {"provider": 5, "channel": 300, "message": '
            "900} (each optional; `channel` also bounds `deadline`).",
        )
        attachments = attachments_field()

        def validate_deadline(self, value: datetime | None) -> datetime | None:
            if value is not None and not (
                timezone.now() < value <= timezone.now() + MAX_SCHEDULE_AHEAD
            ):
                raise ValidationError("A time in the future, at most 365 days ahead.")
            return value

        def validate_send_at(self, value: datetime | None) -> datetime | None:
            return checked_send_at(value)

        def validate(self, attrs: dict) -> dict:
            normalise = registry.get(attrs["channel"]).normalise
            if isinstance(attrs["to"], list):
                if attrs["fallback"]:
                    raise ValidationError(
                        {"fallback": ["A fallback goes with one recipient, not a list."]}
                    )
                attrs["to"] = self.fields["to"].recipients(attrs["to"], normalise)
            else:
                try:
                    attrs["to"] = normalise(attrs["to"])
                except registry.InvalidRecipient as exc:
                    raise ValidationError({"to": [str(exc)]}) from None
            if (
                attrs.get("deadline")
                and attrs.get("send_at")
                and attrs["send_at"] >= attrs["deadline"]
            ):
                raise ValidationError({"deadline": ["After `send_at`, or it could never be met."]})
            if problems := checked_attachments(attrs):
                raise ValidationError(problems)
            if "template" in attrs:
                if attrs["body"] or attrs["html"]:
                    raise ValidationError({"template": ["Give `template` or a body, not both."]})
                return attrs
            errors = {}
            if not attrs["subject"] and registry.get(attrs["channel"]).needs_subject:
                errors["subject"] = [f"Required for {attrs['channel']}."]
            if not attrs["body"] and not attrs["html"]:
                errors["body"] = ["Give `body` or `html` (or `template` and `data`)."]
            if attrs["data"] or attrs["locale"]:
                errors["template"] = ["`data` and `locale` go with `template`."]
            if errors:
                raise ValidationError(errors)
            return attrs

    @extend_schema(
        request=InputSerializer,
        responses={
            202: PolymorphicProxySerializer(
                component_name="MessageAccepted",
                serializers=[MessageOutput, MessageListOutput],
                resource_type_field_name=None,
            ),
            422: OpenApiResponse(
                ErrorOutput,
                description="`template_not_approved`: the template is a draft or was rejected; "
                "the operator must approve it first.",
            ),
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                IDEMPOTENCY_KEY_SCHEMA,
                OpenApiParameter.HEADER,
                description="The same key and request within 24 h: the first answer again "
                "(header `Idempotent-Replayed: true`); the same key with another request: 422 "
                "`idempotency_key_reused`; while the first is still being answered: 409 "
                "`idempotency_request_in_flight`.",
            )
        ],
        summary="Send a message",
    )
    def post(self, request: Request) -> Response:
        def compose_one(fields: dict) -> MessageDraft | list[MessageDraft]:
            finish = {
                "attachments": as_attachments(fields),
                "priority": Priority[fields["priority"].upper()],
                **labels(fields),
            }
            recipients = fields["to"] if isinstance(fields["to"], list) else [fields["to"]]
            # (a list shares its content: rendered once, for the first recipient)
            draft = compose(request.user, compose_request(fields, recipients[0]))
            draft = replace(with_fallback(fields, draft), **finish)
            if not isinstance(fields["to"], list):
                return draft
            return [replace(draft, recipient=recipient) for recipient in recipients]

        def store(fields: dict, draft: MessageDraft | list[MessageDraft], sent: Any) -> dict:
            if isinstance(draft, list):
                batch = create_batch(
                    tenant=request.user,
                    drafts=draft,
                    send_request=sent,
                    lane=Lane.TRANSACTIONAL,
                    send_at=fields["send_at"],
                )
                for message, event in zip(batch.messages, batch.events, strict=True):
                    # new messages: each one's timeline is the event just stored, no attempt yet
                    message._prefetched_objects_cache = {
                        "events": [event],
                        "delivery_attempts": [],
                    }
                return MessageListOutput(
                    {
                        "batch_id": batch.batch_id,
                        "count": len(batch.messages),
                        "messages": batch.messages,
                    }
                ).data
            timeline: list[MessageEvent] = []
            message = create_message(
                tenant=request.user,
                draft=draft,
                send_at=fields["send_at"],
                send_request=sent,
                timeline=timeline,
            )
            # a new message: its timeline is the one event just stored, and no attempt yet
            message._prefetched_objects_cache = {"events": timeline, "delivery_attempts": []}
            return MessageOutput(message).data

        return accept_send(request, "v2/messages", self.InputSerializer, compose_one, store)


def compose_request(fields: dict, recipient: str) -> ComposeRequest:
    """What a send request's validated fields ask to compose, for `recipient`."""
    return ComposeRequest(
        channel=fields["channel"],
        recipient=recipient,
        subject=fields["subject"],
        body=fields["body"],
        html=fields["html"],
        template=fields.get("template", ""),
        data=fields["data"],
        locale=fields["locale"],
        category=fields["category"],
        critical=fields["critical"],
    )


def checked_send_at(value: datetime | None) -> datetime | None:
    if value is not None and value > timezone.now() + MAX_SCHEDULE_AHEAD:
        raise ValidationError(
            f"At most {MAX_SCHEDULE_AHEAD.days} days ahead; a time in the past sends at once."
        )
    return value


def labels(fields: dict) -> dict[str, Any]:
    """A draft's tags and metadata, as the request gave them."""
    return {"tags": unique_tags(fields["tags"]), "metadata": fields["metadata"]}


def with_fallback(fields: dict, draft: MessageDraft) -> MessageDraft:
    """The draft with its fallback and deadline (kept in its params, where delivery reads them)."""
    extra: dict[str, Any] = {}
    if fields.get("fallback"):
        extra["fallback"] = [{"channel": f["channel"], "to": f["to"]} for f in fields["fallback"]]
    now = timezone.now()
    timeouts = fields.get("timeouts") or {}
    # the channel tier is the earlier of `deadline` and the channel timeout
    channel_ends = [fields["deadline"]] if fields.get("deadline") else []
    if timeouts.get("channel"):
        channel_ends.append(now + timedelta(seconds=timeouts["channel"]))
    if channel_ends:
        extra["deadline"] = min(channel_ends).isoformat()
    if timeouts.get("message"):
        extra["final_deadline"] = (now + timedelta(seconds=timeouts["message"])).isoformat()
    if timeouts.get("provider"):
        extra["provider_timeout"] = timeouts["provider"]
    if not extra:
        return draft
    return replace(draft, params={**(draft.params or {}), **extra})


def accept_send(
    request: Request,
    endpoint: str,
    serializer_class: type[serializers.Serializer],
    compose_drafts: Callable[[dict], Any],
    store: Callable[[dict, Any, SendRequest | None], dict],
) -> Response:
    """A send request, as every send endpoint answers it: the body validated, the
    Idempotency-Key honoured (the first answer replayed, 422 for another request, 409 while the
    first is in flight), the messages composed (the key freed again if that fails), then stored
    with their answer in one transaction. 202 with `store`'s answer."""
    idempotency_key = request.headers.get("Idempotency-Key")
    # (a key sent empty is a mistake, not "no key": each retry would send again)
    if idempotency_key is not None and not PRINTABLE_TOKEN.fullmatch(idempotency_key):
        raise ValidationError(
            {"Idempotency-Key": ["1 to 255 printable ASCII characters, no spaces."]}
        )
    if not isinstance(request.data, dict):
        raise ValidationError({"non_field_errors": ["The body must be a JSON object."]})
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    fields = serializer.validated_data
    send_request = None
    if idempotency_key:
        try:
            begun = send_requests.begin(
                request.user,
                endpoint,
                idempotency_key,
                request_fingerprint(fields, getattr(serializer_class, "later_options", ())),
            )
        except send_requests.IdempotencyKeyReused:
            return Response(
                error_body(
                    "idempotency_key_reused",
                    "This Idempotency-Key was already used for a different request.",
                ),
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        except send_requests.RequestInFlight:
            return Response(
                error_body(
                    "idempotency_request_in_flight",
                    "The first request with this Idempotency-Key is still being answered; "
                    "try again shortly.",
                ),
                status=status.HTTP_409_CONFLICT,
                headers={"Retry-After": "1"},
            )
        if isinstance(begun, send_requests.Replay):
            first = begun.body
            # (kept as JSON text: a JSON column would give its keys back in its own order)
            first = json.loads(first) if isinstance(first, str) else first
            return Response(first, status=begun.status, headers={"Idempotent-Replayed": "true"})
        send_request = begun
    try:
        drafts = compose_drafts(fields)
        if send_request is None:
            # (each store is all or nothing by itself; a transaction around it costs round trips)
            body = store(fields, drafts, None)
        else:
            with transaction.atomic():
                body = store(fields, drafts, send_request)
                send_requests.complete(
                    send_request, status.HTTP_202_ACCEPTED, JSONRenderer().render(body).decode()
                )
    except BaseException as exc:
        # nothing was stored: the key is free for the retry, not "in flight" until takeover
        _abandon(send_request)
        if isinstance(exc, CompositionError):
            raise ValidationError(exc.fields) from exc
        if isinstance(exc, template_services.TemplateNotApproved):
            return Response(
                error_body(exc.code, str(exc)), status=status.HTTP_422_UNPROCESSABLE_ENTITY
            )
        raise
    return Response(body, status=status.HTTP_202_ACCEPTED)


def _abandon(send_request: SendRequest | None) -> None:
    if send_request is not None:
        send_requests.abandon(send_request)


class MessageDetail(APIView):
    @extend_schema(responses={200: MessageOutput}, summary="A message, its status and events")
    def get(self, request: Request, message_id: str) -> Response:
        message: Message | None = selectors.get_message(request.user, message_id)
        if message is None:
            raise NotFound("Message not found.")
        return Response(MessageOutput(message).data)


def _change_state(
    request: Request,
    message_id: str,
    change: Callable[[Message, str], Message],
    refused: type[Exception],
    code: str,
    explain: str,
    answer_status: int,
) -> Response:
    """A retry or cancel, as both answer it: 404 for another tenant's or no message, 409 in the
    API's format when the message is not in a state the change starts from."""
    message = None
    if is_message_id(message_id):
        message = Message.objects.for_tenant(request.user).filter(pk=message_id).first()
    if message is None:
        raise NotFound("Message not found.")
    try:
        changed = change(message, f"tenant {request.user.slug} (API)")
    except refused:
        current = Message.objects.for_tenant(request.user).get(pk=message_id).status
        return Response(
            error_body(code, f"{explain}; this one is {current}."),
            status=status.HTTP_409_CONFLICT,
        )
    return Response(MessageOutput(changed).data, status=answer_status)


class MessageRetry(APIView):
    @extend_schema(
        request=None,
        responses={
            202: MessageOutput,
            404: OpenApiResponse(ErrorOutput, description="No such message for this tenant."),
            409: OpenApiResponse(ErrorOutput, description="The message is not dead or failed."),
        },
        summary="Queue a dead or failed message again, with a new round of attempts",
    )
    def post(self, request: Request, message_id: str) -> Response:
        return _change_state(
            request,
            message_id,
            lambda message, by: retry_message(message, by=by),
            NotRetryable,
            "not_retryable",
            "Only a dead or failed message can be retried",
            status.HTTP_202_ACCEPTED,
        )


class MessageCancel(APIView):
    @extend_schema(
        request=None,
        responses={
            200: MessageOutput,
            404: OpenApiResponse(ErrorOutput, description="No such message for this tenant."),
            409: OpenApiResponse(
                ErrorOutput, description="The message is no longer waiting (sending or ended)."
            ),
        },
        summary="Cancel a message that is still waiting (scheduled, or between retries)",
    )
    def post(self, request: Request, message_id: str) -> Response:
        return _change_state(
            request,
            message_id,
            lambda message, by: cancel_message(message, by=by),
            NotCancellable,
            "not_cancellable",
            "Only a queued message can be cancelled",
            status.HTTP_200_OK,
        )


MAX_BATCH_RECIPIENTS = 10_000


class MessageBatchCreate(APIView):
    class InputSerializer(KeptFieldsSerializer):
        class Meta:
            ref_name = "MessageBatchCreateInput"

        class Recipient(KeptFieldsSerializer):
            class Meta:
                ref_name = "MessageBatchRecipient"

            to = serializers.CharField(max_length=4096, validators=[header_safe])
            data = DataField()

        channel = serializers.ChoiceField(choices=registry.sendable_names())
        subject = serializers.CharField(
            max_length=MAX_SUBJECT_CHARS,
            validators=[header_safe],
            required=False,
            allow_blank=True,
            default="",
        )
        body = body_field()
        html = body_field()
        template = serializers.SlugField(max_length=100, required=False)
        data = DataField()
        locale = LocaleField()
        recipients = Recipient(many=True, allow_empty=False, max_length=MAX_BATCH_RECIPIENTS)
        category = serializers.SlugField(
            max_length=64,
            required=False,
            allow_blank=True,
            default="",
            help_text="What kind of message this is: a recipient's opt-out (a preference, a "
            "bulk email's one-click unsubscribe) is per category.",
        )
        critical = serializers.BooleanField(required=False, default=False)
        tags = tags_field()
        metadata = MetadataField(help_text="Given back with each of the batch's messages.")
        send_at = serializers.DateTimeField(
            required=False,
            allow_null=True,
            default=None,
            help_text="When to send the batch (at most 365 days ahead; absent, null or past: "
            "at once). Its messages can be cancelled until then.",
        )
        attachments = attachments_field()
        # (added after the endpoint: they count in an idempotency fingerprint only when given)
        later_options = ("category", "critical", "send_at")

        def validate_send_at(self, value: datetime | None) -> datetime | None:
            return checked_send_at(value)

        def validate(self, attrs: dict) -> dict:
            spec = registry.get(attrs["channel"])
            errors = checked_attachments(attrs)
            for index, recipient in enumerate(attrs["recipients"]):
                try:
                    recipient["to"] = spec.normalise(recipient["to"])
                except registry.InvalidRecipient as exc:
                    errors[f"recipients.{index}.to"] = [str(exc)]
            if "template" in attrs:
                if attrs["body"] or attrs["html"]:
                    errors["template"] = ["Give `template` or a body, not both."]
            else:
                if not attrs["subject"] and spec.needs_subject:
                    errors["subject"] = [f"Required for {attrs['channel']}."]
                if not attrs["body"] and not attrs["html"]:
                    errors["body"] = ["Give `body` or `html` (or `template` and `data`)."]
                if attrs["data"] or attrs["locale"] or any(r["data"] for r in attrs["recipients"]):
                    errors["template"] = ["`data` and `locale` go with `template`."]
            if errors:
                raise ValidationError(errors)
            return attrs

    class OutputSerializer(KeptFieldsSerializer):
        class Meta:
            ref_name = "MessageBatchCreated"

        batch_id = serializers.CharField()
        count = serializers.IntegerField()

    @extend_schema(
        request=InputSerializer,
        responses={
            202: OutputSerializer,
            422: OpenApiResponse(ErrorOutput, description="`template_not_approved`."),
        },
        parameters=[
            OpenApiParameter("Idempotency-Key", IDEMPOTENCY_KEY_SCHEMA, OpenApiParameter.HEADER)
        ],
        summary="Send one message to each of up to 10,000 recipients",
    )
    def post(self, request: Request) -> Response:
        def compose_all(fields: dict) -> list[MessageDraft]:
            shared = {"attachments": as_attachments(fields), **labels(fields)}
            return [replace(draft, **shared) for draft in compose_recipients(fields)]

        def compose_recipients(fields: dict) -> list[MessageDraft]:
            return compose_many(
                request.user,
                compose_request(fields, ""),
                [(r["to"], r["data"]) for r in fields["recipients"]],
            )

        def store(fields: dict, drafts: list, sent: Any) -> dict:
            batch = create_batch(
                tenant=request.user, drafts=drafts, send_request=sent, send_at=fields["send_at"]
            )
            return self.OutputSerializer(
                {"batch_id": batch.batch_id, "count": len(batch.message_ids)}
            ).data

        return accept_send(request, "v2/messages/batch", self.InputSerializer, compose_all, store)


class BatchDetail(APIView):
    class OutputSerializer(KeptFieldsSerializer):
        class Meta:
            ref_name = "BatchSummary"

        id = serializers.CharField()
        count = serializers.IntegerField()
        counts = serializers.DictField(child=serializers.IntegerField())
        finished = serializers.IntegerField()
        progress = serializers.FloatField()

    @extend_schema(
        responses={200: OutputSerializer}, summary="A batch: its messages counted by status"
    )
    def get(self, request: Request, batch_id: str) -> Response:
        summary = selectors.batch_summary(request.user, batch_id)
        if summary is None:
            raise NotFound("Batch not found.")
        return Response(self.OutputSerializer(summary).data)
