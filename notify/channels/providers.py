"""A tenant's own providers: the kinds the platform speaks (each validates its configuration
and builds a transport), and the failover across a channel's providers in their order.

Failover (within one attempt): a provider whose breaker is open is skipped; a `provider_down`,
`temporary` or `throttled` refusal moves to the next provider; any other refusal (`permanent`,
`bad_recipient`) is the message's answer, as the provider gave it. When every provider failed,
the attempt fails as `provider_down` and the message is retried on the platform's schedule (the
longest Retry-After any provider asked for, when one did)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from requests.structures import CaseInsensitiveDict

from notify.channels import (
    aliyun,
    anymail_esp,
    breaker,
    chat,
    fcm,
    send_limits,
    twilio_sms,
    webpush,
)
from notify.channels.base import (
    ConfigError,
    Envelope,
    Inbound,
    ProviderKind,
    ReceiptBatch,
    SendResult,
    Transport,
    TransportError,
    call_seconds,
    call_timeout,
    gated_post,
    usable_url,
)
from notify.channels.http import HttpPushTransport, HttpSmsTransport, parse_report

logger = logging.getLogger(__name__)


class _GatedHttp:
    """The generic HTTP protocol to a tenant's URL, through the outbound gate (resolved once,
    public addresses only, pinned connection, no redirects)."""

    def __init__(self, url: str, secret: str) -> None:
        super().__init__()
        self._provider_url, self._provider_secret = url, secret

    @property
    def config_hint(self) -> str:
        return "the provider's url and secret"

    def target(self) -> tuple[str, str]:
        return self._provider_url, self._provider_secret

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        answer = gated_post(self.provider, url, body, headers)
        body = answer.body if 200 <= answer.status < 300 else b""
        return answer.status, CaseInsensitiveDict(answer.headers), body


class _TenantHttpSms(_GatedHttp, HttpSmsTransport):
    pass


class _TenantHttpPush(_GatedHttp, HttpPushTransport):
    def accepts(self, recipient: str) -> bool:
        # (a Web Push subscription is a JSON object: the webpush kind's)
        return not recipient.startswith("{")


class GenericHttpKind(ProviderKind):
    name = "http"
    label = "Generic JSON over HTTP (docs/http-providers.md)"
    channels = ("sms", "push")
    config_fields = {"url": "the provider's endpoint, http(s)"}
    secret_fields = {"secret": "the shared HMAC secret (at least 16 characters)"}

    def clean(self, config: dict[str, Any], secrets: dict[str, Any]) -> tuple[dict, dict]:
        errors = {}
        url = config.get("url")
        if not usable_url(url):
            errors["config.url"] = "An http(s) URL with a host (and a valid port) is required."
        elif len(url) > 2000:
            errors["config.url"] = "At most 2000 characters."
        secret = secrets.get("secret")
        if not isinstance(secret, str) or len(secret) < 16:
            errors["secrets.secret"] = "A secret of at least 16 characters is required."
        unknown = (set(config) - set(self.config_fields)) | (set(secrets) - set(self.secret_fields))
        if unknown:
            errors["config"] = f"Unknown field(s): {', '.join(sorted(unknown))}."
        if errors:
            raise ConfigError(errors)
        return {"url": url}, {"secret": secret}

    def transport(self, channel: str, config: dict, secrets: dict) -> Transport:
        cls = _TenantHttpSms if channel == "sms" else _TenantHttpPush
        return cls(config["url"], secrets["secret"])

    has_receipts = True

    def receipts(self, inbound: Inbound, config: dict, secrets: dict) -> ReceiptBatch:
        return parse_report(secrets.get("secret", ""), "the provider's secret", inbound)


class _ChatKind(ProviderKind):
    """A chat robot: its webhook URL (which holds its token, hence a secret) and, where the
    robot signs, its signing secret."""

    channels = ("chat",)
    transport_class: ClassVar[type]
    signs: ClassVar[bool] = False

    @property
    def secret_fields(self) -> dict[str, str]:  # type: ignore[override]
        fields = {"webhook": "the robot's webhook URL (it holds its token)"}
        if self.signs:
            fields["secret"] = "the robot's signing secret (optional)"
        return fields

    def clean(self, config: dict[str, Any], secrets: dict[str, Any]) -> tuple[dict, dict]:
        errors = {}
        webhook = secrets.get("webhook")
        if not usable_url(webhook):
            errors["secrets.webhook"] = "The robot's http(s) webhook URL is required."
        elif len(webhook) > 2000:
            errors["secrets.webhook"] = "At most 2000 characters."
        secret = secrets.get("secret", "")
        if not isinstance(secret, str) or len(secret) > 500:
            errors["secrets.secret"] = "A string of at most 500 characters."
        unknown = set(config) | (set(secrets) - set(self.secret_fields))
        if unknown:
            errors["config"] = f"Unknown field(s): {', '.join(sorted(unknown))}."
        if errors:
            raise ConfigError(errors)
        cleaned = {"webhook": webhook}
        if secret:
            cleaned["secret"] = secret
        return {}, cleaned

    def transport(self, channel: str, config: dict, secrets: dict) -> Transport:
        return self.transport_class(secrets["webhook"], secrets.get("secret", ""))


class SlackKind(_ChatKind):
    name, label, transport_class = "slack", "Slack incoming webhook", chat.SlackTransport


class DingTalkKind(_ChatKind):
    name, label, transport_class = "dingtalk", "DingTalk custom robot", chat.DingTalkTransport
    signs = True


class WeComKind(_ChatKind):
    name, label, transport_class = "wecom", "WeCom group robot", chat.WeComTransport


class FeishuKind(_ChatKind):
    name, label, transport_class = "feishu", "Feishu/Lark custom bot", chat.FeishuTransport
    signs = True


KINDS: dict[str, ProviderKind] = {
    kind.name: kind
    for kind in (
        GenericHttpKind(),
        aliyun.AliyunSmsKind(),
        twilio_sms.TwilioSmsKind(),
        fcm.FcmKind(),
        webpush.WebPushKind(),
        anymail_esp.AnymailKind(),
        SlackKind(),
        DingTalkKind(),
        WeComKind(),
        FeishuKind(),
    )
}


def kind_of(name: str) -> ProviderKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError({"kind": f"Unknown kind; one of: {', '.join(sorted(KINDS))}."}) from None


@dataclass(frozen=True)
class Member:
    provider_id: int
    name: str
    transport: Transport
    # this provider's call timeout (None: the platform's default)
    timeout: float | None = None
    # its send limit, messages per second (None: none)
    send_rate: float | None = None


class FailoverTransport(Transport):
    """A tenant's providers for one channel, tried in order within one attempt."""

    def __init__(self, channel: str, members: list[Member]) -> None:
        self.channel = channel
        self.members = members

    def close(self) -> None:
        for member in self.members:
            member.transport.close()

    def send(self, envelope: Envelope) -> SendResult:
        refusals: list[str] = []
        failures: list[TransportError] = []
        retry_after: float | None = None
        last_code = ""
        members = [m for m in self.members if m.transport.accepts(envelope.recipient)]
        if not members:
            raise TransportError(
                f"none of the tenant's {self.channel} providers can address this recipient "
                "(e.g. a Web Push subscription needs a webpush provider, an FCM token an fcm "
                "one): not retried (add a provider of that kind or fix the recipient)",
                permanent=True,
                kind="permanent",
            )
        for member in members:
            scope = member.transport.breaker_scope(envelope.recipient)
            circuit = breaker.circuit(member.provider_id, scope)
            # (the send limit first: a skip for it must not take a half-open breaker's probe)
            wait = send_limits.pace(member.provider_id, member.send_rate)
            if wait is not None:
                refusals.append(f"{member.name}: over its send limit of {member.send_rate:g}/s")
                failures.append(
                    TransportError(
                        f"waiting for the send limit of provider {member.name} "
                        f"({member.send_rate:g}/s)",
                        permanent=False,
                        retry_after=wait,
                        kind=send_limits.KIND,
                        provider=member.name,
                    )
                )
                continue
            if not breaker.allow(circuit):
                refusals.append(f"{member.name}: circuit open" + (f" for {scope}" if scope else ""))
                continue
            try:
                with call_timeout(call_seconds(member.timeout, envelope)):
                    result = member.transport.send(envelope)
            except TransportError as exc:
                exc.provider = member.name
                counted = "provider_down" if exc.provider_fault else exc.kind
                if not breaker.record(circuit, counted):
                    raise  # the provider answered for the message itself: its answer stands
                refusals.append(f"{member.name}: {exc.reason}")
                failures.append(exc)
                last_code = exc.code or last_code
                if exc.retry_after is not None:
                    retry_after = max(retry_after or 0.0, exc.retry_after)
                continue
            breaker.record(circuit, None)
            return replace(result, provider=member.name)
        if len(failures) == 1 and len(refusals) == 1:
            raise failures[0]  # (the one provider's own answer, kind and code)
        if (
            failures
            and len(failures) == len(refusals)
            and all(f.kind == send_limits.KIND for f in failures)
        ):
            # only our own limits stood in the way: the message waits for the first to free
            raise TransportError(
                "waiting for the send limits: " + "; ".join(refusals),
                permanent=False,
                retry_after=min(f.retry_after or 0.0 for f in failures),
                kind=send_limits.KIND,
                provider=failures[0].provider,
            )
        raise TransportError(
            "every provider failed: " + "; ".join(refusals) + ": retried later",
            permanent=False,
            retry_after=retry_after,
            kind="provider_down",
            code=last_code,
            provider=members[-1].name,
        )
