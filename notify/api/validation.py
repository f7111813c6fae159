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


# a message's labels and the caller's own data (notify.messaging.models.Message.tags/metadata)
MAX_TAGS = 10
TAG = r"^[a-z0-9][a-z0-9_.:-]{0,63}$"
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_CHARS = 40
MAX_METADATA_VALUE_CHARS = 500
PRIORITY_NAMES = ("low", "normal", "high")


def tags_field() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.RegexField(
            TAG, max_length=64, error_messages={"invalid": "Lowercase letters, digits and _.:-"}
        ),
        required=False,
        default=list,
        max_length=MAX_TAGS,
        help_text=f"Up to {MAX_TAGS} labels (lowercase letters, digits and _.:-, at most 64 "
        "characters each): `GET /v2/messages?tag=` finds the messages that carry one.",
    )


def unique_tags(tags: list[str]) -> tuple[str, ...]:
    """The tags in the order given, each once."""
    return tuple(dict.fromkeys(tags))


class MetadataField(serializers.DictField):
    """The caller's own data about a message, answered back as given: up to 50 keys of at most
    40 characters, each value a string (at most 500 characters), a number, true/false or null."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", dict)
        kwargs.setdefault("help_text", self.__doc__.split(", answered")[0] + ".")
        super().__init__(**kwargs)
        self.validators.append(no_nul)
        self.validators.append(_bounded_metadata)


def _bounded_metadata(value: dict) -> None:
    if len(value) > MAX_METADATA_KEYS:
        raise serializers.ValidationError(f"At most {MAX_METADATA_KEYS} keys.")
    for key, item in value.items():
        if not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
            raise serializers.ValidationError(
                f"Keys are 1 to {MAX_METADATA_KEY_CHARS} characters ({key[:50]!r})."
            )
        if isinstance(item, str):
            if len(item) > MAX_METADATA_VALUE_CHARS:
                raise serializers.ValidationError(
                    f"{key!r}: at most {MAX_METADATA_VALUE_CHARS} characters."
                )
        elif item is not None and type(item) not in (bool, int, float):
            raise serializers.ValidationError(
                f"{key!r}: a string, a number, true/false or null (not a list or an object)."
            )
