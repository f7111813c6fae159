"""Native mode: the legacy API answered by this platform. A call is checked in the old
gateway's order (SPEC.md, "Order of checks"), becomes platform messages rendered with the
converted templates and dispatched by the workers, and is answered in the legacy shape;
queries answer from the platform's messages, then from the imported history."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.db import transaction

from compat import guards
from compat.models import LegacyMessage
from compat.protocol import (
    COMMON_PARAMS,
    NONCE,
    STATUS_DESC,
    LegacyError,
    check_emails,
    check_user_ids,
    dedupe,
    dumps,
    json_object_param,
    legacy_time,
    load_json,
    mask,
    normalise_mobile,
    out_id_param,
    sign_matches,
    sign_name_param,
    split_list,
    success,
    timestamp_ok,
)
from notify.caching import TtlCache
from notify.channels import registry
from notify.messaging import requests as send_requests
from notify.messaging.models import Lane, Message, MessageStatus, Origin
from notify.messaging.services import MessageDraft, create_batch
from notify.tenants.models import Tenant
from templates_store import selectors as template_selectors
from templates_store import services as template_services
from templates_store.models import Template
from templates_store.velocity.engine import TemplateRenderError

logger = logging.getLogger(__name__)

SMS, MAIL, PUSH = "sms", "mail", "push"
# sends to at most this many recipients ride the transactional lane (codes, receipts); larger
# ones are bulk traffic and take their turn with other tenants' batches
TRANSACTIONAL_MAX_RECIPIENTS = 10
# how long a call waits for a concurrent call with the same out_id to finish
IN_FLIGHT_WAIT_S = 5.0
# a send request's status when its out_id was forwarded to the old gateway (compat.out_ids),
# and once the old gateway answered it
HELD_BY_LEGACY = 0
ANSWERED_BY_LEGACY = 1


def authenticate(params: dict[str, str], tenant: Tenant | None) -> Tenant:
    """Steps 1-6: the calling app (`tenant`: the one whose app_key the call gives, looked up
    by the caller), or LegacyError. A well-formed nonce is used up here, whatever the rest of
    the call answers."""
    for name in COMMON_PARAMS:
        if params.get(name, "") == "":
            raise LegacyError(10001, name)
    if tenant is None:
        raise LegacyError(10002)
    if not tenant.is_active:
        raise LegacyError(40002)
    if not timestamp_ok(params["timestamp"], time.time() * 1000):
        raise LegacyError(10004)
    if not tenant.app_secret or not sign_matches(params, tenant.app_secret):
        raise LegacyError(10003)
    nonce = params["nonce"]
    if not NONCE.fullmatch(nonce) or not guards.use_nonce(tenant.app_key, nonce):
        raise LegacyError(10005)
    return tenant


# PostgreSQL text cannot hold NUL, which the old gateway stored and answered: it is kept as
# U+FFFF (a noncharacter, never in text a tenant sends) and given back as NUL in answers
NUL_STAND_IN = "\uffff"


def to_db(text: str) -> str:
    return text.replace("\x00", NUL_STAND_IN) if "\x00" in text else text


def from_db(text: str) -> str:
    return text.replace(NUL_STAND_IN, "\x00") if NUL_STAND_IN in text else text


# An out_id is an identity (its send's idempotency, the answers and reports that give it back):
# it is kept injectively, U+FFFF doubled and NUL as U+FFFF then "0" (at most twice as long), so
# `a\x00` and `a\uffff` stay two out_ids.
_ESCAPED_KEY = re.compile("\uffff([\uffff0])")


def key_to_db(text: str) -> str:
    if NUL_STAND_IN not in text and "\x00" not in text:
        return text
    return text.replace(NUL_STAND_IN, NUL_STAND_IN * 2).replace("\x00", NUL_STAND_IN + "0")


def key_from_db(text: str) -> str:
    if NUL_STAND_IN not in text:
        return text
    return _ESCAPED_KEY.sub(lambda m: "\x00" if m.group(1) == "0" else NUL_STAND_IN, text)


def json_safe(value: Any) -> Any:
    """`value` as a database JSON column holds it: NaN and infinities (which the old gateway's
    JSON accepted) as their names, NUL as U+FFFF; nesting too deep to walk is kept as text."""
    try:
        return _json_safe(value)
    except RecursionError:
        return {"unstorable": "nested too deeply"}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return repr(value)
    if isinstance(value, str):
        return to_db(value)
    if isinstance(value, dict):
        return {to_db(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def storable(value: str) -> bool:
    """Whether the database can hold (and compare) the text: PostgreSQL refuses NUL."""
    return "\x00" not in value


# What every call looks up (its app, its template and published version), kept by each process
# for LEGACY_LOOKUP_CACHE_SECONDS: a change (an app disabled, a new secret, a version published)
# applies that much later; 0 turns it off.
lookups: TtlCache[Any] = TtlCache(lambda: settings.LEGACY_LOOKUP_CACHE_SECONDS)


def find_tenant(app_key: str, tenant_id: int | None = None) -> Tenant | None:
    """The app's tenant; `tenant_id`, when the caller has just read it, keeps a cached copy of
    another tenant that had this app_key before (deleted and created again) from answering."""
    if not storable(app_key):
        return None
    return lookups.get(
        ("tenant", app_key, tenant_id), lambda: Tenant.objects.filter(app_key=app_key).first()
    )


def find_template(tenant: Tenant, tpl_id: str) -> Template | None:
    if not storable(tpl_id):
        return None
    return lookups.get(
        ("template", tenant.pk, tpl_id),
        lambda: Template.objects.for_tenant(tenant).filter(legacy_tpl_id=tpl_id).first(),
    )


def published_version(template: Template) -> Any:
    return lookups.get(
        ("version", template.pk), lambda: template_selectors.published_version(template, "")
    )


# ---- step 8 --------------------------------------------------------------------------------


def declared_params(template: Template) -> list[str]:
    return [name.strip() for name in template.params or [] if name.strip()]


def checked_template(
    tenant: Tenant, tpl_id: str, channel: str, params_list: list[dict[str, Any]]
) -> Template:
    """`20001` unknown, another app's or another channel's; `20003` not approved; `20002` the
    first declared name missing from a parameter set."""
    template = find_template(tenant, tpl_id)
    if template is None or template.channel != registry.from_legacy(channel).name:
        raise LegacyError(20001)
    if template.status != Template.Status.APPROVED:
        raise LegacyError(20003)
    declared = declared_params(template)
    for tpl_params in params_list:
        for name in declared:
            if name not in tpl_params:
                raise LegacyError(20002, name)
    return template


# ---- sending -------------------------------------------------------------------------------


@dataclass
class Outgoing:
    """One message of a send: its recipient and how to render it."""

    recipient: str
    render: Callable[[], tuple[str, str]]  # (subject, content), may raise LegacyError(50000)
    params: dict[str, Any]


class Renderer:
    """Renders a template's published (converted) version; each distinct parameter set once
    per call. A render error is the old gateway's `50000 system error`."""

    def __init__(self, template: Template) -> None:
        self.template = template
        self.version = published_version(template)
        self._cache: dict[str, tuple[str, str]] = {}
        dry = _dry_run.get()
        if dry is not None and self.version is not None:
            dry.version_id = self.version.pk

    def __call__(self, tpl_params: dict[str, Any]) -> tuple[str, str]:
        key = dumps(tpl_params)
        if key not in self._cache:
            try:
                rendered = template_services.render_template(
                    self.template, tpl_params, "", self.version
                )
            except (template_services.TemplateError, TemplateRenderError) as exc:
                logger.warning(
                    "legacy render failed tenant=%s template=%s: %s",
                    self.template.tenant_id,
                    self.template.legacy_tpl_id,
                    exc,
                )
                raise LegacyError(50000) from exc
            self.version = rendered.version
            self._cache[key] = (rendered.subject, rendered.body)
        return self._cache[key]


def send(
    tenant: Tenant,
    endpoint: str,
    channel: str,
    out_id: str,
    outgoing: list[Outgoing],
    lane: str,
) -> bytes:
    """Steps 9 and 10: the rate limit, then the idempotent send. Renders every message before
    anything is stored (a render error stores nothing and uses no ID)."""
    dry = _dry_run.get()
    if dry is not None:
        dry.render(registry.from_legacy(channel).legacy_alias, outgoing)
        return b""
    if not guards.admit(tenant.app_key, tenant.qps_limit):
        raise LegacyError(40001)
    send_request = None
    if out_id:
        begun = _begin(tenant, endpoint, key_to_db(out_id))
        if isinstance(begun, send_requests.Replay):
            return begun.body.encode("utf-8")
        send_request = begun
    try:
        rendered = [item.render() for item in outgoing]
    except BaseException:
        if send_request is not None:
            send_requests.abandon(send_request)
        raise
    spec = registry.from_legacy(channel)
    drafts = []
    for item, (subject, content) in zip(outgoing, rendered, strict=True):
        subject, content = to_db(subject), to_db(content)
        if spec.html_bodies:
            draft = MessageDraft(
                channel=spec.name, recipient=item.recipient, subject=subject, html=content
            )
        else:
            draft = MessageDraft(
                channel=spec.name, recipient=item.recipient, subject=subject, body=content
            )
        drafts.append(_with(draft, params=json_safe(item.params), reference=key_to_db(out_id)))
    try:
        # the messages and the out_id's answer commit together (create_batch alone is atomic)
        with transaction.atomic() if send_request is not None else contextlib.nullcontext():
            batch = create_batch(
                tenant=tenant,
                drafts=drafts,
                send_request=send_request,
                origin=Origin.LEGACY,
                lane=lane,
            )
            body = success(
                {"batch_id": batch.batch_id, "count": len(drafts), "msg_ids": batch.message_ids}
            )
            if send_request is not None:
                send_requests.complete(send_request, 200, body.decode("utf-8"))
    except BaseException:
        if send_request is not None:
            send_requests.abandon(send_request)
        raise
    return body


@dataclass
class DryMessage:
    channel: str  # the legacy channel name
    recipient: str
    subject: str
    content: str


@dataclass
class DryRun:
    """What the platform would answer and send for a call, found without sending (shadow)."""

    code: int = 0
    messages: list[DryMessage] | None = None
    count: int = 0  # messages the call makes (all of them, not only those rendered)
    version_id: int | None = None
    limit: int = 0

    def render(self, channel: str, outgoing: list[Outgoing]) -> None:
        self.messages = []
        for item in outgoing[: self.limit or None]:
            subject, content = item.render()
            self.messages.append(DryMessage(channel, item.recipient, subject, content))
        self.count = len(outgoing)


_dry_run: contextvars.ContextVar[DryRun | None] = contextvars.ContextVar(
    "legacy_dry_run", default=None
)


def dry_run(path: str, params: dict[str, str], tenant: Tenant, limit: int = 0) -> DryRun:
    """A send call's answer code and (up to `limit`, 0: all) rendered messages, as this
    platform would give them, with nothing used up or stored: steps 1-6 (the caller's
    identity), 9 (the rate limit) and the out_id's replay are the old gateway's to judge."""
    result = DryRun(limit=limit)
    token = _dry_run.set(result)
    try:
        HANDLERS[path](tenant, params, path)
    except LegacyError as error:
        result.code = error.code
    finally:
        _dry_run.reset(token)
    return result


def _with(draft: MessageDraft, **changes: Any) -> MessageDraft:
    return replace(draft, **changes)


def _begin(tenant: Tenant, endpoint: str, out_id: str) -> Any:
    """The out_id's send request (new) or the first answer to replay; a concurrent call with
    the same out_id is waited for (the old gateway serialised them)."""
    deadline = time.monotonic() + IN_FLIGHT_WAIT_S
    while True:
        try:
            begun = send_requests.begin(tenant, endpoint, out_id, "legacy", origin=Origin.LEGACY)
        except send_requests.RequestInFlight:
            if time.monotonic() >= deadline:
                raise LegacyError(50000) from None
            time.sleep(0.02)
            continue
        if isinstance(begun, send_requests.Replay) and begun.status == HELD_BY_LEGACY:
            # the old gateway was given this out_id (compat.out_ids) and may have sent: the
            # caller's retry is forwarded to it
            raise LegacyError(50000)
        return begun


def lane_for(count: int) -> str:
    return Lane.TRANSACTIONAL if count <= TRANSACTIONAL_MAX_RECIPIENTS else Lane.BULK


def sms_send(tenant: Tenant, params: dict[str, str], endpoint: str) -> bytes:
    mobiles = params.get("mobiles", "")
    if mobiles == "":
        raise LegacyError(10001, "mobiles")
    mobiles_list = dedupe([normalise_mobile(m) for m in split_list(mobiles)])
    if not 1 <= len(mobiles_list) <= 200:
        raise LegacyError(30002)
    tpl_id = params.get("tpl_id", "")
    if tpl_id == "":
        raise LegacyError(10001, "tpl_id")
    tpl_params = json_object_param(params, "tpl_params")
    sign_name = sign_name_param(params, tenant.sign_name)
    out_id = out_id_param(params)
    template = checked_template(tenant, tpl_id, SMS, [tpl_params])
    outgoing = _sms_outgoing(template, sign_name, [(m, tpl_params) for m in mobiles_list])
    return send(tenant, endpoint, SMS, out_id, outgoing, lane_for(len(outgoing)))


def _sms_outgoing(
    template: Template, sign_name: str, pairs: list[tuple[str, dict[str, Any]]]
) -> list[Outgoing]:
    renderer = Renderer(template)

    def render_for(tpl_params: dict[str, Any]) -> Callable[[], tuple[str, str]]:
        return lambda: ("", f"【{sign_name}】{renderer(tpl_params)[1]}")

    return [
        Outgoing(mobile, render_for(tpl_params), _message_params(template, tpl_params))
        for mobile, tpl_params in pairs
    ]


def _message_params(template: Template | None, tpl_params: dict[str, Any], **extra: Any) -> dict:
    params: dict[str, Any] = {"data": tpl_params, **extra}
    if template is not None:
        params = {"template": template.key, "legacy_tpl_id": template.legacy_tpl_id, **params}
    return params


def sms_batch_send(tenant: Tenant, params: dict[str, str], endpoint: str) -> bytes:
    raw = params.get("items", "")
    if raw == "":
        raise LegacyError(10001, "items")
    items = load_json(raw, "items")
    if not isinstance(items, list):
        raise LegacyError(10006, "items")
    pairs: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("mobile"), str):
            raise LegacyError(10006, "items")
        item_params = item.get("tpl_params", {})
        if item_params is None:
            item_params = {}
        if not isinstance(item_params, dict):
            raise LegacyError(10006, "items")
        mobile = normalise_mobile(item["mobile"].strip())
        if mobile not in seen:
            seen.add(mobile)
            pairs.append((mobile, item_params))
    if not 1 <= len(pairs) <= 1000:
        raise LegacyError(30002)
    tpl_id = params.get("tpl_id", "")
    if tpl_id == "":
        raise LegacyError(10001, "tpl_id")
    sign_name = sign_name_param(params, tenant.sign_name)
    out_id = out_id_param(params)
    template = checked_template(tenant, tpl_id, SMS, [p for _, p in pairs])
    outgoing = _sms_outgoing(template, sign_name, pairs)
    return send(tenant, endpoint, SMS, out_id, outgoing, lane_for(len(outgoing)))


def mail_send(tenant: Tenant, params: dict[str, str], endpoint: str) -> bytes:
    to = params.get("to", "")
    if to == "":
        raise LegacyError(10001, "to")
    addresses = check_emails(to)
    if not 1 <= len(addresses) <= 50:
        raise LegacyError(30002)
    cc = check_emails(params["cc"]) if params.get("cc", "") != "" else []
    tpl_id, content, subject = (params.get(k, "") for k in ("tpl_id", "content", "subject"))
    if tpl_id == "" and content == "":
        raise LegacyError(10001, "tpl_id")
    if tpl_id == "" and subject == "":
        raise LegacyError(10001, "subject")
    tpl_params = json_object_param(params, "tpl_params")
    from_alias = params.get("from_alias", "")
    if len(from_alias) > 64:
        raise LegacyError(10006, "from_alias")
    out_id = out_id_param(params)
    template = None
    if tpl_id:
        template = checked_template(tenant, tpl_id, MAIL, [tpl_params])
        renderer = Renderer(template)

        def render() -> tuple[str, str]:
            rendered_subject, rendered_content = renderer(tpl_params)
            # a subject given with a template replaces the rendered one, verbatim
            return (subject if subject != "" else rendered_subject), rendered_content

    else:

        def render() -> tuple[str, str]:
            return subject, content  # a raw body: sent as given, never rendered

    extra: dict[str, Any] = {}
    if cc:
        extra["cc"] = cc
    if from_alias:
        extra["from_alias"] = from_alias
    message_params = _message_params(template, tpl_params, **extra)
    outgoing = [Outgoing(address, render, message_params) for address in addresses]
    return send(tenant, endpoint, MAIL, out_id, outgoing, lane_for(len(outgoing)))


def push_send(tenant: Tenant, params: dict[str, str], endpoint: str) -> bytes:
    user_ids = params.get("user_ids", "")
    if user_ids == "":
        raise LegacyError(10001, "user_ids")
    users = check_user_ids(user_ids)
    if not 1 <= len(users) <= 1000:
        raise LegacyError(30002)
    tpl_id = params.get("tpl_id", "")
    if tpl_id == "":
        raise LegacyError(10001, "tpl_id")
    tpl_params = json_object_param(params, "tpl_params")
    extras = json_object_param(params, "extras")
    out_id = out_id_param(params)
    template = checked_template(tenant, tpl_id, PUSH, [tpl_params])
    renderer = Renderer(template)
    message_params = _message_params(template, tpl_params, extras=extras)
    outgoing = [Outgoing(user, lambda: renderer(tpl_params), message_params) for user in users]
    return send(tenant, endpoint, PUSH, out_id, outgoing, lane_for(len(outgoing)))


# ---- queries -------------------------------------------------------------------------------

FAILED_STATUSES = {
    MessageStatus.FAILED,
    MessageStatus.DEAD,
    MessageStatus.SUPPRESSED,
    MessageStatus.CANCELLED,
}


def legacy_status(message: Message) -> int:
    if message.status == MessageStatus.DELIVERED:
        return 2
    if message.status in FAILED_STATUSES:
        return 3
    # accepted is SENT to a legacy caller, as the old gateway said at once
    return 1


def legacy_err_code(message: Message) -> str:
    """The failure as the old gateway reported it: the carrier's (provider's) own code."""
    if message.status == MessageStatus.DELIVERED or message.status not in FAILED_STATUSES:
        return ""
    if message.status == MessageStatus.SUPPRESSED:
        return "SUPPRESSED"
    if message.status == MessageStatus.CANCELLED:
        return "CANCELLED"
    code = message.error_code
    if message.channel == "email" and (not code or code.isdigit()):
        # the old gateway reported every refused mail as a bounce
        return "BOUNCED" if message.status == MessageStatus.FAILED else "EXPIRED"
    if message.status == MessageStatus.DEAD:
        return code or "EXPIRED"
    return code or "FAILED"


def _report_time(message: Message) -> str:
    if message.status == MessageStatus.DELIVERED:
        return legacy_time(message.delivered_at)
    if message.status in FAILED_STATUSES:
        return legacy_time(message.failed_at or message.updated_at)
    return ""


def status_data(message: Message) -> dict[str, Any]:
    channel = registry.get(message.channel).legacy_alias
    status = legacy_status(message)
    return {
        "msg_id": message.id,
        "batch_id": message.batch_id,
        "channel": channel,
        "recipient": mask(channel, message.recipient),
        "status": status,
        "status_desc": STATUS_DESC[status],
        "err_code": legacy_err_code(message),
        "send_time": legacy_time(message.created_at),
        "report_time": _report_time(message),
        "out_id": key_from_db(message.reference),
    }


def history_status_data(row: LegacyMessage) -> dict[str, Any]:
    return {
        "msg_id": row.msg_id,
        "batch_id": row.batch_id,
        "channel": row.channel,
        "recipient": mask(row.channel, row.recipient),
        "status": row.status,
        "status_desc": STATUS_DESC.get(row.status, ""),
        "err_code": row.err_code,
        "send_time": row.send_time,
        "report_time": row.report_time,
        "out_id": key_from_db(row.out_id),
    }


def _own_message(tenant: Tenant, params: dict[str, str]) -> tuple[dict[str, Any], str, str]:
    """(status data, subject, content) of the app's message, or `20004`."""
    msg_id = params.get("msg_id", "")
    if msg_id == "":
        raise LegacyError(10001, "msg_id")
    if len(msg_id) <= 18 and storable(msg_id):
        message = Message.objects.for_tenant(tenant).filter(pk=msg_id).first()
        if message is not None:
            content = message.html if message.channel == "email" else message.body
            return status_data(message), from_db(message.subject), from_db(content)
        row = LegacyMessage.objects.for_tenant(tenant).filter(pk=msg_id).first()
        if row is not None:
            return history_status_data(row), from_db(row.subject), from_db(row.content)
    raise LegacyError(20004)


def message_status(tenant: Tenant, params: dict[str, str], endpoint: str) -> bytes:
    data, _, _ = _own_message(tenant, params)
    return success(data)


def message_detail(tenant: Tenant, params: dict[str, str], endpoint: str) -> bytes:
    data, subject, content = _own_message(tenant, params)
    return success({**data, "subject": subject or "", "content": content or ""})


TEMPLATE_STATUS_CODES = {
    Template.Status.DRAFT: 0,
    Template.Status.APPROVED: 1,
    Template.Status.REJECTED: 2,
}


def template_get(tenant: Tenant, params: dict[str, str], endpoint: str) -> bytes:
    tpl_id = params.get("tpl_id", "")
    if tpl_id == "":
        raise LegacyError(10001, "tpl_id")
    template = find_template(tenant, tpl_id)
    if template is None:
        raise LegacyError(20001)
    version = template.versions.filter(locale="").order_by("-published", "-number").first()
    subject = content = ""
    if version is not None:
        # the legacy API shows the Velocity source the tenant wrote
        subject = version.legacy_subject if version.is_converted else version.subject
        content = version.legacy_body if version.is_converted else version.body
    return success(
        {
            "tpl_id": template.legacy_tpl_id,
            "channel": registry.get(template.channel).legacy_alias,
            "name": template.name,
            "subject": subject,
            "content": content,
            "params": ",".join(template.params or []),
            "status": TEMPLATE_STATUS_CODES.get(template.status, 0),
        }
    )


HANDLERS: dict[str, Callable[[Tenant, dict[str, str], str], bytes]] = {
    "/gateway/sms/send.do": sms_send,
    "/gateway/sms/batch_send.do": sms_batch_send,
    "/gateway/mail/send.do": mail_send,
    "/gateway/push/send.do": push_send,
    "/gateway/message/status.do": message_status,
    "/gateway/message/detail.do": message_detail,
    "/gateway/template/get.do": template_get,
}


def handle(path: str, params: dict[str, str], tenant: Tenant | None) -> bytes:
    """The answer to one call to a known path with the right method; `tenant` is the one
    whose app_key the call gives (None: no such tenant)."""
    tenant = authenticate(params, tenant)
    return HANDLERS[path](tenant, params, path)
