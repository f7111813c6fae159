"""Shadow comparison (Scientist/Diffy style): a shadowed send is answered by the old gateway;
afterwards a worker runs the same call through the platform as a dry run (it renders and
resolves recipients, never sends), reads what the old gateway sent (`detail.do`, signed with
the app's secret) and compares the two, field by field: answer code, count, and for each of the
first SHADOW_MAX_MESSAGES messages its channel, recipient (masked, as detail.do shows it),
subject and content.

Noise is told apart from regressions the way Diffy does it: the platform renders the call
twice; where its two renderings differ from each other (a timestamp, a random code), that part
of the field is noise. A legacy value that equals the platform's but for the noisy parts is
reported as noise, never counted as a mismatch, and never hidden. Known, accepted differences
are ignore rules (rollout.IgnoreRule), reported apart too."""

from __future__ import annotations

import difflib
import json
import logging
import re
import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import regex
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from compat import native, proxy
from compat.protocol import compute_sign, mask
from notify.rollout.models import IgnoreRule, ShadowComparison
from notify.tenants.models import Tenant

logger = logging.getLogger(__name__)

SEND_PATHS = {
    "/gateway/sms/send.do",
    "/gateway/sms/batch_send.do",
    "/gateway/mail/send.do",
    "/gateway/push/send.do",
}
# answers decided before the endpoint's own checks (identity, signature, nonce, rate, app
# state): the dry run cannot repeat them, so such calls are not compared
UNCOMPARED_CODES = {10002, 10003, 10004, 10005, 40001, 40002}
SIGNATURE_PARAMS = ("sign", "nonce", "timestamp")
# a try that has not ended by then (its worker died) is taken again
CLAIM_LEASE_S = 120
MESSAGE_FIELDS = ("channel", "recipient", "subject", "content")
_CODE = re.compile(rb'^\{"code":(-?\d+)')


def answer_code(body: bytes) -> int | None:
    match = _CODE.match(body)
    return int(match.group(1)) if match else None


def record(tenant_id: int, path: str, params: dict[str, str], answer: bytes) -> None:
    """Called after the old gateway answered a shadowed send: the comparison to make later.
    Never fails the call."""
    if path not in SEND_PATHS:
        return
    code = answer_code(answer)
    if code is None or code in UNCOMPARED_CODES or code == 10001 and _common_missing(params):
        return
    msg_ids: list[str] = []
    if code == 0:
        try:
            msg_ids = list(json.loads(answer)["data"]["msg_ids"])
        except (ValueError, KeyError, TypeError):
            return
    try:
        comparison = ShadowComparison.all_tenants.create(
            tenant_id=tenant_id,
            endpoint=path,
            tpl_id=native.to_db(params.get("tpl_id", ""))[:64],
            params=native.json_safe({k: v for k, v in params.items() if k not in SIGNATURE_PARAMS}),
            legacy_code=code,
            legacy_msg_ids=msg_ids,
        )
    except Exception:  # noqa: BLE001 - the caller has its answer already
        logger.exception("shadow comparison not recorded for %s", path)
        return
    transaction.on_commit(lambda: _publish(comparison.pk))


def _common_missing(params: dict[str, str]) -> bool:
    return any(params.get(name, "") == "" for name in ("app_key", "timestamp", "nonce", "sign"))


def _publish(comparison_id: int) -> None:
    from compat.tasks import compare_shadow

    try:
        compare_shadow.delay(comparison_id)
    except Exception:  # noqa: BLE001 - the sweep publishes it again
        logger.warning("shadow comparison %s not queued; the sweep will", comparison_id)


def _claim(comparison_id: int) -> ShadowComparison | None:
    now = timezone.now()
    claimed = ShadowComparison.all_tenants.filter(
        pk=comparison_id, state=ShadowComparison.State.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + timedelta(seconds=CLAIM_LEASE_S), attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    return ShadowComparison.all_tenants.select_related("tenant").get(pk=comparison_id)


def compare(comparison_id: int) -> str | None:
    """Makes one comparison (claimed first: a comparison queued twice is made once)."""
    comparison = _claim(comparison_id)
    if comparison is None:
        return None
    try:
        return _compare(comparison)
    except _Unreadable as exc:
        _retry(comparison, str(exc))
    except Exception as exc:  # noqa: BLE001 - tried again, then given up, never lost silently
        logger.exception("shadow comparison %s failed", comparison.pk)
        _retry(comparison, f"the platform's dry run failed: {exc!r}")
    return None


def _compare(comparison: ShadowComparison) -> str:
    params = {
        k: native.from_db(v) if isinstance(v, str) else str(v) for k, v in comparison.params.items()
    }
    tenant = comparison.tenant
    limit = settings.SHADOW_MAX_MESSAGES
    first = native.dry_run(comparison.endpoint, params, tenant, limit)
    second = native.dry_run(comparison.endpoint, params, tenant, limit)
    rules = _rules(tenant, comparison.tpl_id)
    result = _Result(rules)
    result.field("code", "", str(comparison.legacy_code), str(first.code), str(second.code))
    legacy_ms = None
    if comparison.legacy_code == 0 and first.code == 0:
        result.field(
            "count", "", str(len(comparison.legacy_msg_ids)), str(first.count), str(second.count)
        )
        started = time.monotonic()
        details = [
            _legacy_detail(tenant, msg_id)
            for msg_id in comparison.legacy_msg_ids[: len(first.messages or [])]
        ]
        legacy_ms = (time.monotonic() - started) * 1000
        for detail, mine, again in zip(
            details, first.messages or [], second.messages or [], strict=False
        ):
            masked = mask(mine.channel, mine.recipient)
            masked_again = mask(again.channel, again.recipient)
            label = detail.get("msg_id", "")
            result.field("channel", label, detail.get("channel", ""), mine.channel, again.channel)
            result.field("recipient", label, detail.get("recipient", ""), masked, masked_again)
            result.field(
                "subject",
                label,
                detail.get("subject", ""),
                native.from_db(mine.subject),
                native.from_db(again.subject),
            )
            result.field(
                "content",
                label,
                detail.get("content", ""),
                native.from_db(mine.content),
                native.from_db(again.content),
            )
    comparison.new_code = first.code
    comparison.version_id = first.version_id
    comparison.differences = native.json_safe(result.differences)
    comparison.noise = native.json_safe(result.noise)
    comparison.ignored = native.json_safe(result.ignored)
    comparison.state = result.state
    comparison.legacy_ms = legacy_ms
    comparison.compared_at = timezone.now()
    comparison.last_error = ""
    comparison.save(
        update_fields=[
            "new_code",
            "version_id",
            "differences",
            "noise",
            "ignored",
            "state",
            "legacy_ms",
            "compared_at",
            "last_error",
        ]
    )
    return comparison.state


class _Unreadable(Exception):
    pass


def _retry(comparison: ShadowComparison, error: str) -> None:
    delays = settings.SHADOW_RETRY_DELAYS
    if comparison.attempts > len(delays):
        comparison.state = ShadowComparison.State.UNREADABLE
        comparison.last_error = error[:500]
        comparison.compared_at = timezone.now()
        comparison.save(update_fields=["state", "last_error", "compared_at"])
        return
    comparison.next_attempt_at = timezone.now() + timedelta(seconds=delays[comparison.attempts - 1])
    comparison.last_error = error[:500]
    comparison.save(update_fields=["next_attempt_at", "last_error"])


def _legacy_detail(tenant: Tenant, msg_id: str) -> dict[str, Any]:
    """What the old gateway sent: its `detail.do` for the message, called as the app."""
    params = {
        "app_key": tenant.app_key or "",
        "timestamp": str(int(time.time() * 1000)),
        "nonce": secrets.token_hex(16),
        "msg_id": msg_id,
    }
    params["sign"] = compute_sign(params, tenant.app_secret)
    upstream = proxy.forward("GET", "/gateway/message/detail.do", urlencode(params), b"", "")
    try:
        answer = json.loads(upstream.body)
    except ValueError as exc:
        raise _Unreadable(f"detail.do of {msg_id}: not JSON") from exc
    if answer.get("code") != 0 or not isinstance(answer.get("data"), dict):
        raise _Unreadable(f"detail.do of {msg_id}: {answer.get('code')} {answer.get('msg')}")
    return answer["data"]


def _rules(tenant: Tenant, tpl_id: str) -> list[IgnoreRule]:
    return list(
        IgnoreRule.objects.filter(Q(tenant__isnull=True) | Q(tenant=tenant)).filter(
            Q(tpl_id="") | Q(tpl_id=tpl_id)
        )
    )


class _Result:
    def __init__(self, rules: list[IgnoreRule]) -> None:
        self.rules = rules
        self.differences: list[dict[str, str]] = []
        self.noise: list[dict[str, str]] = []
        self.ignored: list[dict[str, Any]] = []

    @property
    def state(self) -> str:
        if self.differences:
            return ShadowComparison.State.MISMATCH
        if self.ignored:
            return ShadowComparison.State.IGNORED
        if self.noise:
            return ShadowComparison.State.NOISE
        return ShadowComparison.State.MATCH

    def field(self, name: str, msg_id: str, legacy: str, new: str, new_again: str) -> None:
        if legacy == new and new == new_again:
            return
        entry = {"field": name, "msg_id": msg_id, "legacy": _clip(legacy), "new": _clip(new)}
        if new != new_again:
            entry["new_again"] = _clip(new_again)
            if matches_but_noise(legacy, new, new_again):
                self.noise.append(entry)
                return
        for rule in self.rules:
            if rule.field == name and accepted(rule.pattern, legacy, new):
                self.ignored.append({**entry, "rule": rule.pk})
                return
        self.differences.append(entry)


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def accepted(pattern: str, legacy: str, new: str) -> bool:
    if not pattern:
        return True
    try:
        compiled = re.compile(pattern)
    except re.error:
        return False
    return compiled.sub("", legacy) == compiled.sub("", new)


_TOKEN = re.compile(r"\w+|\W", re.UNICODE)
MAX_NOISE_TOKENS = 20_000
MAX_NOISE_SLOTS = 32
# a guard on the match below (its pattern is bounded, the text is a tenant's)
NOISE_MATCH_TIMEOUT_S = 0.2


def matches_but_noise(legacy: str, first: str, second: str) -> bool:
    """Whether `legacy` equals the platform's rendering but for the parts where the platform's
    two renderings differ from each other. Each such part becomes a slot shaped like what
    filled it on the platform's side (digits, letters and digits, no blanks, or anything; the
    same length give or take two): a timestamp or a code may differ there, a sentence may not.
    """
    a, b = _TOKEN.findall(first), _TOKEN.findall(second)
    if len(a) > MAX_NOISE_TOKENS or len(b) > MAX_NOISE_TOKENS:
        return False
    pieces: list[str] = []
    slots = 0
    pending: tuple[str, str] | None = None
    opcodes = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            if pending is not None:
                pieces.append(_slot(*pending))
                pending = None
            pieces.append(regex.escape("".join(a[i1:i2])))
        else:
            this = ("".join(a[i1:i2]), "".join(b[j1:j2]))
            if pending is None:
                slots += 1
                pending = this
            else:
                pending = (pending[0] + this[0], pending[1] + this[1])
    if pending is not None:
        pieces.append(_slot(*pending))
    if slots == 0:
        return legacy == first
    if slots > MAX_NOISE_SLOTS:
        return False
    try:
        return (
            regex.fullmatch("".join(pieces), legacy, regex.DOTALL, timeout=NOISE_MATCH_TIMEOUT_S)
            is not None
        )
    except TimeoutError:
        return False


def _slot(one: str, other: str) -> str:
    both = one + other
    if both.isascii() and both.isdigit():
        kind = "[0-9]"
    elif all(c.isalnum() for c in both):
        kind = r"[^\W_]"
    elif not any(c.isspace() for c in both):
        kind = r"\S"
    else:
        kind = "."
    low, high = sorted((len(one), len(other)))
    low = max(1 if low else 0, low - 2)
    return f"(?:{kind}){{{low},{high + 2}}}"


def sweep(limit: int = 500) -> int:
    """Queues again the comparisons that are due (lost wake-ups, retries)."""
    ids = list(
        ShadowComparison.all_tenants.filter(
            state=ShadowComparison.State.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for comparison_id in ids:
        _publish(comparison_id)
    return len(ids)
