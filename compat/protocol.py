"""The legacy gateway's wire format (../shared/legacy/SPEC.md): parameters, signing, answers,
error codes and the checks on parameter values. Pure functions: no database, no HTTP."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

CONTENT_TYPE = "application/json;charset=UTF-8"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
TIME_ZONE = ZoneInfo("Asia/Shanghai")
TIMESTAMP_WINDOW_MS = 300_000
NONCE_WINDOW_S = 600
IDEMPOTENCY_WINDOW_S = 24 * 3600
COMMON_PARAMS = ("app_key", "timestamp", "nonce", "sign")

STATUS_DESC = {0: "PENDING", 1: "SENT", 2: "DELIVERED", 3: "FAILED"}

MESSAGES = {
    10001: "missing param: {}",
    10002: "invalid app_key",
    10003: "invalid sign",
    10004: "timestamp expired",
    10005: "nonce reused",
    10006: "invalid param: {}",
    20001: "template not found",
    20002: "missing tpl param: {}",
    20003: "template not approved",
    20004: "message not found",
    30001: "invalid {}: {}",
    30002: "too many recipients",
    40001: "rate limit exceeded",
    40002: "app disabled",
    50000: "system error",
}

# ASCII only: other scripts' digits are not digits to the old gateway
DIGITS = re.compile(r"[0-9]+", re.A)
NONCE = re.compile(r"[A-Za-z0-9]{8,32}", re.A)
MOBILE = re.compile(r"(?:\+86|86)?(1[3-9][0-9]{9})", re.A)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", re.A)
USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.A)


class LegacyError(Exception):
    """An answer with a non-zero code: `code` and its message."""

    def __init__(self, code: int, *args: object) -> None:
        self.code = code
        self.msg = MESSAGES[code].format(*args)
        super().__init__(f"{code} {self.msg}")


def dumps(value: Any) -> str:
    """JSON as the old gateway writes it: compact, non-ASCII characters as they are."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def answer(code: int, msg: str, data: Any) -> bytes:
    return dumps({"code": code, "msg": msg, "data": data}).encode("utf-8")


def success(data: Any) -> bytes:
    return answer(0, "success", data)


def error_answer(error: LegacyError) -> bytes:
    return answer(error.code, error.msg, None)


SYSTEM_ERROR = answer(50000, MESSAGES[50000], None)


def parse_params(raw: bytes) -> dict[str, str]:
    """A form body or a query string: UTF-8 with replacement characters for invalid bytes; the
    first occurrence of a repeated name wins (in the sign too)."""
    params: dict[str, str] = {}
    text = raw.decode("utf-8", "replace")
    for key, value in parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace"):
        params.setdefault(key, value)
    return params


def parse_query(query: str) -> dict[str, str]:
    """A query string as the old gateway's HTTP server read it: raw bytes beyond ASCII stay
    one character each (Latin-1), percent-escapes are UTF-8 with replacement characters;
    the first occurrence of a repeated name wins."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace"):
        params.setdefault(key, value)
    return params


def compute_sign(params: dict[str, str], secret: str) -> str:
    """Uppercase hex MD5 of secret + k1 + v1 + … + secret over the non-empty parameters other
    than `sign`, sorted by key in code-point order."""
    parts = [secret]
    for key in sorted(k for k, v in params.items() if k != "sign" and v != ""):
        parts.append(key)
        parts.append(params[key])
    parts.append(secret)
    return hashlib.md5("".join(parts).encode("utf-8")).hexdigest().upper()


def sign_matches(params: dict[str, str], secret: str) -> bool:
    sign = params.get("sign", "")
    # case-insensitive for ASCII letters only: a sign with any other character is wrong
    return sign.isascii() and sign.upper() == compute_sign(params, secret)


def timestamp_ok(value: str, now_ms: float) -> bool:
    if not DIGITS.fullmatch(value) or len(value.lstrip("0")) > 15:
        return False
    return abs(now_ms - int(value)) <= TIMESTAMP_WINDOW_MS


def split_list(value: str) -> list[str]:
    """Comma-separated items, each stripped as Python's str.strip() does; empty items stay
    (they are invalid)."""
    return [item.strip() for item in value.split(",")]


def dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def normalise_mobile(value: str) -> str:
    match = MOBILE.fullmatch(value)
    if not match:
        raise LegacyError(30001, "mobile", value)
    return match.group(1)


def check_emails(value: str) -> list[str]:
    items = split_list(value)
    for item in items:
        if not EMAIL.fullmatch(item):
            raise LegacyError(30001, "email", item)
    return dedupe(items)


def check_user_ids(value: str) -> list[str]:
    items = split_list(value)
    for item in items:
        if not USER_ID.fullmatch(item):
            raise LegacyError(30001, "user_id", item)
    return dedupe(items)


def load_json(raw: str, name: str) -> Any:
    """Python's json, as the old gateway parsed it; text that is not JSON, or whose strings
    hold an unpaired surrogate (not storable as UTF-8), is 10006. Nesting beyond the parser's
    recursion limit is 50000, as there."""
    try:
        value = json.loads(raw)
        dumps(value).encode("utf-8")
    except RecursionError:
        raise LegacyError(50000) from None
    except ValueError:  # UnicodeEncodeError included
        raise LegacyError(10006, name) from None
    return value


def json_object_param(params: dict[str, str], name: str) -> dict[str, Any]:
    """An optional JSON object parameter; absent or empty gives {}."""
    raw = params.get(name, "")
    if raw == "":
        return {}
    value = load_json(raw, name)
    if not isinstance(value, dict):
        raise LegacyError(10006, name)
    return value


def out_id_param(params: dict[str, str]) -> str:
    out_id = params.get("out_id", "")
    if len(out_id) > 64:
        raise LegacyError(10006, "out_id")
    return out_id


def sign_name_param(params: dict[str, str], default: str) -> str:
    sign_name = params.get("sign_name", "")
    if sign_name == "":
        return default
    if not 2 <= len(sign_name) <= 12:
        raise LegacyError(10006, "sign_name")
    return sign_name


def mask(channel: str, recipient: str) -> str:
    """A recipient as status answers show it (legacy channel names)."""
    if channel == "sms":
        return recipient[:3] + "****" + recipient[-4:]
    if channel == "mail":
        local, _, domain = recipient.partition("@")
        return local[:1] + "***@" + domain
    return recipient


def legacy_time(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(TIME_ZONE).strftime(TIME_FORMAT)
