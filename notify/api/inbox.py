"""Views for /v2/inbox/<recipient>: a recipient's in-app messages, newest first, with the unread
count and cursor pagination; marking one read or unread, or all read."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notify.api.serializers import StrictSerializer
from notify.channels import registry
from notify.messaging import cursors, inbox


def _recipient(value: str) -> str:
    try:
        return registry.get("inapp").normalise(value)
    except registry.InvalidRecipient as exc:
        raise ValidationError({"recipient": [str(exc)]}) from None


RECIPIENT = OpenApiParameter(
    "recipient",
    str,
    OpenApiParameter.PATH,
    description="Your user id: 1 to 255 printable ASCII characters, no spaces or slashes.",
    pattern=r"^[!-.0-~]{1,255}$",
)


class ReadAllOutput(serializers.Serializer):
    marked_read = serializers.IntegerField(help_text="How many messages were unread.")


class ItemOutput(serializers.Serializer):
    id = serializers.CharField(source="message_id")
    subject = serializers.CharField(source="message.subject")
    body = serializers.SerializerMethodField()
    read = serializers.SerializerMethodField()
    read_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_body(self, item: inbox.InboxItem) -> str:
        return item.message.body or item.message.html

    def get_read(self, item: inbox.InboxItem) -> bool:
        return item.read_at is not None


class PageOutput(serializers.Serializer):
    items = ItemOutput(many=True)
    unread_count = serializers.IntegerField()
    total = serializers.IntegerField()
    next_cursor = serializers.CharField(allow_null=True)


class Inbox(APIView):
    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "InboxFilter"

        cursor = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=cursors.MAX_CURSOR_CHARS
        )
        limit = serializers.IntegerField(
            required=False, default=20, min_value=1, max_value=inbox.PAGE_MAX
        )
        unread = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        parameters=[RECIPIENT, FilterSerializer],
        responses={200: PageOutput},
        summary="A recipient's in-app messages (newest first) and unread count",
    )
    def get(self, request: Request, recipient: str) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        try:
            found = inbox.page(
                request.user,
                _recipient(recipient),
                cursor=data["cursor"],
                limit=data["limit"],
                unread_only=data["unread"],
            )
        except cursors.BadCursor as exc:
            raise ValidationError({"cursor": [str(exc)]}) from None
        return Response(
            {
                "items": ItemOutput(found.items, many=True).data,
                "unread_count": found.unread,
                "total": found.total,
                "next_cursor": found.next_cursor,
            }
        )


class InboxItemState(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "InboxItemState"

        read = serializers.BooleanField()

    @extend_schema(
        parameters=[RECIPIENT],
        request=InputSerializer,
        responses={200: ItemOutput},
        summary="Mark an in-app message read or unread",
    )
    def patch(self, request: Request, recipient: str, message_id: str) -> Response:
        item = inbox.find(request.user, _recipient(recipient), message_id)
        if item is None:
            raise NotFound("No such message in this inbox.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(ItemOutput(inbox.mark(item, serializer.validated_data["read"])).data)


class InboxReadAll(APIView):
    @extend_schema(
        parameters=[RECIPIENT],
        request=None,
        responses={200: ReadAllOutput},
        summary="Mark every message read",
    )
    def post(self, request: Request, recipient: str) -> Response:
        changed = inbox.mark_all_read(request.user, _recipient(recipient))
        return Response({"marked_read": changed})
