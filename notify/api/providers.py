"""Views for /v2/providers: a tenant's own accounts at providers, per channel, in failover
order. Secrets are write-only: accepted, stored encrypted, never returned."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notify.api.serializers import StrictSerializer
from notify.channels import breaker, registry
from notify.channels.base import MAX_PROVIDER_TIMEOUT, MIN_PROVIDER_TIMEOUT
from notify.channels.models import Provider
from notify.channels.providers import KINDS, ConfigError
from notify.channels.services import create_provider, stored_secrets, update_provider


class ProviderOutput(serializers.Serializer):
    id = serializers.IntegerField()
    channel = serializers.CharField()
    kind = serializers.CharField()
    name = serializers.CharField()
    config = serializers.JSONField()
    # which secrets are set, never their values
    secrets_set = serializers.SerializerMethodField()
    priority = serializers.IntegerField()
    enabled = serializers.BooleanField()
    timeout = serializers.FloatField(allow_null=True)
    send_rate = serializers.FloatField(allow_null=True)
    circuit = serializers.SerializerMethodField()
    receipts_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_secrets_set(self, provider: Provider) -> list[str]:
        return sorted(stored_secrets(provider))

    def get_circuit(self, provider: Provider) -> str:
        return breaker.shown_state(provider.pk)

    def get_receipts_url(self, provider: Provider) -> str:
        # (absolute when the platform knows its public URL: what the provider is given)
        return f"{settings.NOTIFY_PUBLIC_URL.rstrip('/')}/v2/receipts/providers/{provider.pk}"


def TIMEOUT_FIELD(**options: object) -> serializers.FloatField:  # noqa: N802 - (a field factory)
    return serializers.FloatField(
        min_value=MIN_PROVIDER_TIMEOUT,
        max_value=MAX_PROVIDER_TIMEOUT,
        allow_null=True,
        help_text="Seconds one call to this provider may take before failover moves to the "
        "next (null: the platform's default).",
        **options,
    )


def SEND_RATE_FIELD(**options: object) -> serializers.FloatField:  # noqa: N802 - (a field factory)
    return serializers.FloatField(
        min_value=0.01,
        max_value=100_000,
        allow_null=True,
        help_text="Messages per second the platform sends through this account, all workers "
        "together (null: no limit). A send over it waits up to a second for its turn, then "
        "fails over to the next provider, or is retried later.",
        **options,
    )


def _config_errors(exc: ConfigError) -> ValidationError:
    return ValidationError({field: [message] for field, message in exc.errors.items()})


def _own(request: Request, provider_id: int) -> Provider:
    provider = Provider.objects.for_tenant(request.user).filter(pk=provider_id).first()
    if provider is None:
        raise NotFound("No such provider.")
    return provider


class Providers(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ProviderInput"

        channel = serializers.ChoiceField(choices=registry.CHANNEL_CHOICES)
        kind = serializers.ChoiceField(choices=sorted(KINDS))
        name = serializers.SlugField(max_length=64)
        config = serializers.DictField()
        secrets = serializers.DictField(write_only=True)
        priority = serializers.IntegerField(min_value=0, max_value=10_000, default=100)
        enabled = serializers.BooleanField(default=True)
        timeout = TIMEOUT_FIELD(default=None)
        send_rate = SEND_RATE_FIELD(default=None)

    @extend_schema(
        responses={200: ProviderOutput(many=True)},
        summary="Your providers, per channel in failover order",
    )
    def get(self, request: Request) -> Response:
        rows = Provider.objects.for_tenant(request.user).order_by("channel", "priority", "id")
        return Response(ProviderOutput(rows, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: ProviderOutput},
        summary="Add a provider (its kind checks its config and secrets)",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            provider = create_provider(request.user, **serializer.validated_data)
        except ConfigError as exc:
            raise _config_errors(exc) from None
        return Response(ProviderOutput(provider).data, status=status.HTTP_201_CREATED)


class ProviderDetail(APIView):
    class PatchSerializer(StrictSerializer):
        class Meta:
            ref_name = "ProviderPatch"

        name = serializers.SlugField(max_length=64, required=False)
        config = serializers.DictField(required=False)
        secrets = serializers.DictField(write_only=True, required=False)
        priority = serializers.IntegerField(min_value=0, max_value=10_000, required=False)
        enabled = serializers.BooleanField(required=False)
        timeout = TIMEOUT_FIELD(required=False)
        send_rate = SEND_RATE_FIELD(required=False)

    @extend_schema(responses={200: ProviderOutput}, summary="One of your providers")
    def get(self, request: Request, provider_id: int) -> Response:
        return Response(ProviderOutput(_own(request, provider_id)).data)

    @extend_schema(
        request=PatchSerializer,
        responses={200: ProviderOutput},
        summary="Change a provider (secrets given replace those stored)",
    )
    def patch(self, request: Request, provider_id: int) -> Response:
        provider = _own(request, provider_id)
        serializer = self.PatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            provider = update_provider(provider, **serializer.validated_data)
        except ConfigError as exc:
            raise _config_errors(exc) from None
        return Response(ProviderOutput(provider).data)

    @extend_schema(responses={204: None}, summary="Remove a provider")
    def delete(self, request: Request, provider_id: int) -> Response:
        _own(request, provider_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
