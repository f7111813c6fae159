"""Views for /v2/webhooks: a tenant's subscriptions to its message events (Standard Webhooks
signing; the secret is shown once, at creation) and each subscription's delivery log."""

from __future__ import annotations

import ipaddress

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notify import outbound
from notify.api.serializers import StrictSerializer
from notify.messaging import webhooks
from notify.messaging.models import WebhookDelivery, WebhookSubscription

MAX_LOGGED = 200


class SubscriptionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class DeliveryOutput(serializers.Serializer):
    event_id = serializers.CharField()
    event_type = serializers.CharField()
    state = serializers.CharField()
    attempts = serializers.IntegerField()
    last_status = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    next_attempt_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


def _checked_url(url: str) -> str:
    """An address given as such must be a public one now; a name is resolved, and refused if
    it leads to a private address, at each delivery (notify/outbound.py)."""
    try:
        parts, port = outbound.checked_url(url)
    except outbound.TargetRefused as exc:
        raise ValidationError({"url": [str(exc)]}) from None
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return url
    try:
        outbound.resolve(parts.hostname, port)
    except outbound.TargetRefused as exc:
        raise ValidationError({"url": [str(exc)]}) from None
    return url


class EventsField(serializers.ListField):
    child = serializers.ChoiceField(choices=webhooks.ALL_EVENT_TYPES)


def _own(request: Request, subscription_id: int) -> WebhookSubscription:
    row = WebhookSubscription.objects.for_tenant(request.user).filter(pk=subscription_id).first()
    if row is None:
        raise NotFound("No such webhook.")
    return row


class Webhooks(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "WebhookInput"

        url = serializers.URLField(max_length=2000)
        events = EventsField(required=False, default=list, max_length=20)
        description = serializers.CharField(
            max_length=200, required=False, allow_blank=True, default=""
        )

    class CreatedOutput(SubscriptionOutput):
        secret = serializers.CharField(help_text="Shown this once: verify deliveries with it.")

    @extend_schema(responses={200: SubscriptionOutput(many=True)}, summary="Your webhooks")
    def get(self, request: Request) -> Response:
        rows = WebhookSubscription.objects.for_tenant(request.user).order_by("id")
        return Response(SubscriptionOutput(rows, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: CreatedOutput},
        summary="Subscribe an endpoint to message events (the secret is shown once)",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        row = WebhookSubscription.all_tenants.create(
            tenant=request.user,
            url=_checked_url(data["url"]),
            events=sorted(set(data["events"])),
            description=data["description"],
            secret=webhooks.new_secret(),
        )
        webhooks.forget_cached()
        return Response(
            {**SubscriptionOutput(row).data, "secret": row.secret}, status=status.HTTP_201_CREATED
        )


class WebhookDetail(APIView):
    class PatchSerializer(StrictSerializer):
        class Meta:
            ref_name = "WebhookPatch"

        url = serializers.URLField(max_length=2000, required=False)
        events = EventsField(required=False, max_length=20)
        description = serializers.CharField(max_length=200, required=False, allow_blank=True)
        enabled = serializers.BooleanField(required=False)

    @extend_schema(responses={200: SubscriptionOutput}, summary="One of your webhooks")
    def get(self, request: Request, webhook_id: int) -> Response:
        return Response(SubscriptionOutput(_own(request, webhook_id)).data)

    @extend_schema(
        request=PatchSerializer,
        responses={200: SubscriptionOutput},
        summary="Change a webhook (enabling it again clears its failure count)",
    )
    def patch(self, request: Request, webhook_id: int) -> Response:
        row = _own(request, webhook_id)
        serializer = self.PatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "url" in data:
            row.url = _checked_url(data["url"])
        if "events" in data:
            row.events = sorted(set(data["events"]))
        if "description" in data:
            row.description = data["description"]
        if data.get("enabled") is True and not row.enabled:
            row.enabled, row.disabled_reason, row.failed_in_a_row = True, "", 0
        elif data.get("enabled") is False:
            row.enabled = False
        row.save()
        webhooks.forget_cached()
        return Response(SubscriptionOutput(row).data)

    @extend_schema(responses={204: None}, summary="Remove a webhook")
    def delete(self, request: Request, webhook_id: int) -> Response:
        _own(request, webhook_id).delete()
        webhooks.forget_cached()
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveries(APIView):
    @extend_schema(
        responses={200: DeliveryOutput(many=True)},
        summary="A webhook's delivery log (newest first, at most 200)",
    )
    def get(self, request: Request, webhook_id: int) -> Response:
        row = _own(request, webhook_id)
        rows = WebhookDelivery.objects.filter(subscription=row).order_by("-created_at", "-id")
        return Response(DeliveryOutput(rows[:MAX_LOGGED], many=True).data)
