"""Serializers of the v2 API: JSON values of the type each field documents, and fields built
once per thread.

`StrictSerializer`: DRF's fields coerce (`"enabled": 0` is false, `"name": 5` is "5"); a JSON
body here must carry the type the schema documents, or it is a 400 naming the field. Query
strings are text and keep DRF's parsing.

`KeptFieldsSerializer` builds its fields once per thread instead of once per instance.

DRF deep-copies every declared field (nested serializers and their fields included) for each
serializer it creates: on a send, the input and output serializers' 40-odd fields were built
again for every call, about a fifth of what the call cost. The fields of these serializers
hold no per-call state (validation results live on the top-level serializer, created per
call), so each thread keeps one set per top-level class and binds it to each new serializer;
a thread never shares them with another, whatever server runs the code. A nested serializer
is itself one of the kept fields: it builds its own fields once, the usual way, and keeps them,
so no two serializers alive in one tree ever share a field."""

from __future__ import annotations

import threading
from typing import Any

from django.http import QueryDict
from rest_framework import serializers

_kept = threading.local()


def _whole(value: Any) -> bool:
    # (JSON has one number type: 5.0 is the integer 5, as JSON Schema counts it)
    return type(value) is int or (type(value) is float and value.is_integer())


def wrong_json_type(field: serializers.Field, value: Any) -> Any:
    """What `value` should have been for `field`, when a JSON value of its type it is not:
    a message, or for a list, the messages by item index (as DRF reports items)."""
    if value is None:
        return None  # (null is the field's allow_null to answer)
    if isinstance(field, serializers.BooleanField):
        return None if type(value) is bool else "Must be true or false."
    if isinstance(field, serializers.IntegerField):
        return None if _whole(value) else "Must be an integer."
    if isinstance(field, serializers.DecimalField):
        # (documented as a string; a number is taken as well)
        return None if type(value) in (str, int, float) else "Must be a number."
    if isinstance(field, serializers.FloatField):
        return None if type(value) in (int, float) else "Must be a number."
    if isinstance(field, serializers.MultipleChoiceField):
        return None if isinstance(value, list) else "Must be a list."
    if isinstance(field, serializers.ChoiceField):
        if not all(isinstance(choice, str) for choice in field.choices):
            return None  # (choices of other types: DRF compares their text)
        return None if isinstance(value, str) else "Must be a string."
    if isinstance(field, (serializers.CharField, serializers.DateTimeField)):
        return None if isinstance(value, str) else "Must be a string."
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        items = {}
        for index, item in enumerate(value):
            message = wrong_json_type(field.child, item)
            if message is not None:
                items[index] = [message] if isinstance(message, str) else message
        return items or None
    return None


class StrictSerializer(serializers.Serializer):
    """Type errors and DRF's own validation errors are answered together, by field."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict) or isinstance(data, QueryDict):
            return super().to_internal_value(data)
        errors: dict[str, Any] = {}
        for name, field in self.fields.items():
            if not field.read_only and name in data:
                message = wrong_json_type(field, data[name])
                if message is not None:
                    errors[name] = [message] if isinstance(message, str) else message
        if not errors:
            return super().to_internal_value(data)
        try:
            super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if isinstance(exc.detail, dict):
                errors = {**exc.detail, **errors}
        raise serializers.ValidationError(errors)


class KeptFieldsSerializer(StrictSerializer):
    def get_fields(self) -> dict[str, Any]:
        if getattr(self, "parent", None) is not None:
            return super().get_fields()
        by_class: dict[type, list[tuple[str, serializers.Field, str | None]]] | None = getattr(
            _kept, "by_class", None
        )
        if by_class is None:
            by_class = _kept.by_class = {}
        kept = by_class.get(type(self))
        if kept is None:
            # each field with its declared `source` (binding fills in the field name, and
            # DRF refuses to bind a field whose source equals its name a second time)
            kept = [(name, field, field.source) for name, field in super().get_fields().items()]
            by_class[type(self)] = kept
        fields = {}
        for name, field, declared_source in kept:
            field.source = declared_source
            fields[name] = field
        return fields
