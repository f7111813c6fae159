"""A DRF serializer that builds its fields once per thread instead of once per instance.

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

from rest_framework import serializers

_kept = threading.local()


class KeptFieldsSerializer(serializers.Serializer):
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
