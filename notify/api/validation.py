"""Input checks shared by the API views."""

import re

from rest_framework import serializers

from notify.headers import header_problem

PRINTABLE_TOKEN = re.compile(r"[\x21-\x7e]{1,255}")
# the Idempotency-Key header as the API checks it (PRINTABLE_TOKEN), for the OpenAPI schema
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": "^[\\x21-\\x7e]+$",
}
LOCALE = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")


def contains_nul(value: object) -> bool:
    """PostgreSQL text and jsonb cannot hold U+0000: such input is refused up front."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(item) for item in value)
    return False


def no_nul(value: object) -> None:
    if contains_nul(value):
        raise serializers.ValidationError("Must not contain NUL characters.")


def header_safe(value: str) -> None:
    """For every field that ends up in a header: see notify/headers.py."""
    problem = header_problem(value)
    if problem:
        raise serializers.ValidationError(problem)


def canonical_locale(value: str) -> str:
    """`zh_cn` → `zh-CN`; '' (the default locale) stays ''."""
    if value == "":
        return ""
    if not LOCALE.fullmatch(value):
        raise serializers.ValidationError("Not a locale tag (e.g. `en`, `zh-CN`).")
    language, *rest = value.replace("_", "-").split("-")
    parts = [language.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            parts.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            parts.append(part.title())
        else:
            parts.append(part.lower())
    return "-".join(parts)


class LocaleField(serializers.CharField):
    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("max_length", 35)
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", "")
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: object) -> str:
        return canonical_locale(super().to_internal_value(data))


class DataField(serializers.DictField):
    """Template data: a JSON object without NUL characters."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", dict)
        super().__init__(**kwargs)
        self.validators.append(no_nul)
