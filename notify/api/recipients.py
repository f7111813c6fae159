"""Views for /v2/suppressions and /v2/preferences: who must not get a tenant's messages."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notify.api.errors import ErrorOutput
from notify.api.serializers import StrictSerializer
from notify.channels import registry
from notify.messaging.models import Preference, Suppression

MAX_LISTED = 1000


class RecipientSerializer(StrictSerializer):
    """A channel and a recipient, written as the channel sends it."""

    class Meta:
        ref_name = "RecipientRef"

    channel = serializers.ChoiceField(choices=registry.CHANNEL_CHOICES)
    to = serializers.CharField(max_length=4096)

    def validate(self, attrs: dict) -> dict:
        try:
            attrs["to"] = registry.get(attrs["channel"]).normalise(attrs["to"])
        except registry.InvalidRecipient as exc:
            raise ValidationError({"to": [str(exc)]}) from None
        return attrs


class SuppressionOutput(serializers.Serializer):
    channel = serializers.CharField()
    to = serializers.CharField(source="recipient")
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class Suppressions(APIView):
    class InputSerializer(RecipientSerializer):
        class Meta:
            ref_name = "SuppressionInput"

        reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SuppressionFilter"

        channel = serializers.ChoiceField(choices=registry.CHANNEL_CHOICES, required=False)

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: SuppressionOutput(many=True)},
        summary="The suppression list (newest first, at most 1,000)",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = Suppression.objects.for_tenant(request.user).order_by("-created_at", "-id")
        if "channel" in filters.validated_data:
            rows = rows.filter(channel=filters.validated_data["channel"])
        return Response(SuppressionOutput(rows[:MAX_LISTED], many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: SuppressionOutput, 200: SuppressionOutput},
        summary="Suppress a recipient: no message of yours goes to it, critical ones included",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        row, created = Suppression.objects.for_tenant(request.user).get_or_create(
            tenant=request.user,
            channel=fields["channel"],
            recipient=fields["to"],
            defaults={"reason": fields["reason"]},
        )
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(SuppressionOutput(row).data, status=answer)

    @extend_schema(
        parameters=[RecipientSerializer],
        responses={
            204: None,
            404: OpenApiResponse(ErrorOutput, description="This recipient is not suppressed."),
        },
        summary="Take a recipient off the suppression list",
    )
    def delete(self, request: Request) -> Response:
        serializer = RecipientSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        deleted, _ = (
            Suppression.objects.for_tenant(request.user)
            .filter(
                channel=serializer.validated_data["channel"],
                recipient=serializer.validated_data["to"],
            )
            .delete()
        )
        if not deleted:
            raise NotFound("This recipient is not suppressed.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class PreferenceOutput(serializers.Serializer):
    channel = serializers.CharField()
    to = serializers.CharField(source="recipient")
    category = serializers.CharField()
    opted_out = serializers.BooleanField()
    updated_at = serializers.DateTimeField()


class Preferences(APIView):
    class InputSerializer(RecipientSerializer):
        class Meta:
            ref_name = "PreferenceInput"

        category = serializers.SlugField(
            max_length=64, required=False, allow_blank=True, default=""
        )
        opted_out = serializers.BooleanField()

    @extend_schema(
        parameters=[RecipientSerializer],
        responses={200: PreferenceOutput(many=True)},
        summary="A recipient's preferences",
    )
    def get(self, request: Request) -> Response:
        serializer = RecipientSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        rows = Preference.objects.for_tenant(request.user).filter(
            channel=serializer.validated_data["channel"],
            recipient=serializer.validated_data["to"],
        )
        return Response(PreferenceOutput(rows.order_by("category"), many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={200: PreferenceOutput},
        summary="Set a recipient's opt-out of a channel, for one category or (no category) all",
    )
    def put(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        row, _ = Preference.objects.for_tenant(request.user).update_or_create(
            tenant=request.user,
            channel=fields["channel"],
            recipient=fields["to"],
            category=fields["category"],
            defaults={"opted_out": fields["opted_out"], "updated_at": timezone.now()},
        )
        return Response(PreferenceOutput(row).data)
