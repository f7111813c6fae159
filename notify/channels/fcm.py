"""Firebase Cloud Messaging through its HTTP v1 API, with a tenant's service account.

Two calls, both through the outbound gate (notify/outbound.py), since the tenant gives the URLs:

1. An OAuth 2.0 access token, by the JWT bearer grant (RFC 7523) as Google documents it for
   service accounts: a JWT signed RS256 with the account's private key (`iss` the account's
   email, `aud` the token endpoint, `scope` firebase.messaging, one hour at most) POSTed as
   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>` to its `token_uri`.
   google-auth builds and signs the JWT; its HTTP goes through `GatedRequest`. The token (an
   hour's) is kept per process and reused until shortly before it expires.
2. `POST {endpoint}/v1/projects/{project_id}/messages:send` with `Authorization: Bearer` and
   `{"message": {"token", "notification": {"title", "body"}, "data"}}`. FCM answers
   `{"name": "projects/<p>/messages/<id>"}`, or an error whose `details` carry an `FcmError`
   `errorCode`: an unregistered token (or one of another sender) is `bad_recipient`, and the
   platform suppresses it; QUOTA_EXCEEDED is `throttled` (its Retry-After honoured);
   UNAVAILABLE and INTERNAL are `provider_down`; an auth error is `permanent`.

A Web Push subscription (JSON, `{"endpoint": …}`) is no FCM token: the transport declines it,
and failover passes it to a provider that can address it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as google_exceptions
from google.auth import transport as google_transport
from google.oauth2 import service_account

from notify import outbound
from notify.channels.base import (
    ConfigError,
    Envelope,
    ProviderKind,
    SendResult,
    Transport,
    TransportError,
    gated_post,
    retry_after_seconds,
    usable_url,
)

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
DEFAULT_ENDPOINT = "https://fcm.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"

# A token is refreshed this long before it expires: a send that takes it near the end of its
# life must not reach FCM with it expired (google-auth itself refreshes 3m45s early).
REFRESH_MARGIN_SECONDS = 300.0
MAX_CACHED_TOKENS = 1024
MAX_ERROR_TEXT = 300

# Google's project ids (6 to 30 characters), optionally domain-scoped (`example.com:my-app`).
_PROJECT_ID = re.compile(r"(?:[a-z0-9.-]{1,63}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
BAD_RECIPIENT_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
# RFC 6749 error codes a token endpoint gives for a passing trouble of its own
TOKEN_ENDPOINT_TEMPORARY = frozenset({"temporarily_unavailable", "server_error"})


def _short(value: object) -> str:
    return (value if isinstance(value, str) else "")[:MAX_ERROR_TEXT]


# --- the service account -----------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _key_problem(pem: str) -> str:
    """What is wrong with a PEM private key for signing Google's JWT (blank: nothing). Kept per
    key: providers are re-checked each time their transport is built, and loading an RSA key
    checks it (milliseconds)."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return (
            "private_key: not an unencrypted PEM private key ('-----BEGIN PRIVATE KEY-----…'); "
            "paste the key file's content as Google gave it."
        )
    if not isinstance(key, rsa.RSAPrivateKey):
        return "private_key: an RSA key is required (Google signs service account keys RSA)."
    if key.key_size < 2048:
        return "private_key: an RSA key of at least 2048 bits is required."
    return ""


def clean_service_account(value: object) -> dict[str, str]:
    """The fields of a service account JSON key the transport uses, checked; raises ValueError
    with a message for the tenant (it never quotes the key)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(
                "Not JSON: give the service account's key file content as downloaded from the "
                "Google Cloud console (IAM > Service accounts > Keys)."
            ) from None
    if not isinstance(value, dict):
        raise ValueError("The service account's JSON key: an object, or its JSON text.")
    if value.get("type") != "service_account":
        raise ValueError(
            'type: "service_account" is required (a key of a service account, not of a user '
            "or an OAuth client)."
        )
    email = value.get("client_email")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        raise ValueError("client_email: the service account's email is required.")
    private_key = value.get("private_key")
    if not isinstance(private_key, str) or not private_key:
        raise ValueError("private_key: the service account's PEM private key is required.")
    if len(private_key) > 10_000:
        raise ValueError("private_key: at most 10,000 characters.")
    problem = _key_problem(private_key)
    if problem:
        raise ValueError(problem)
    token_uri = value.get("token_uri", DEFAULT_TOKEN_URI)
    if not usable_url(token_uri) or len(token_uri) > 2000:
        raise ValueError(f"token_uri: an http(s) URL (Google's is {DEFAULT_TOKEN_URI}).")
    cleaned = {
        # kept, although always the same: a stored account is cleaned again when used
        "type": "service_account",
        "client_email": email,
        "private_key": private_key,
        "token_uri": token_uri,
    }
    for optional in ("private_key_id", "project_id"):
        if optional in value:
            if not isinstance(value[optional], str) or len(value[optional]) > 200:
                raise ValueError(f"{optional}: a string of at most 200 characters.")
            cleaned[optional] = value[optional]
    return cleaned


class FcmKind(ProviderKind):
    name = "fcm"
    label = "Firebase Cloud Messaging (HTTP v1)"
    channels = ("push",)
    config_fields = {
        "project_id": "the Firebase project id (default: the service account's project_id)",
        "endpoint": f"default {DEFAULT_ENDPOINT}",
    }
    secret_fields = {
        "service_account": "the service account's JSON key (the key file's content, or as an "
        "object), of an account allowed to send with FCM",
    }

    def clean(self, config: dict[str, Any], secrets: dict[str, Any]) -> tuple[dict, dict]:
        errors = {}
        endpoint = config.get("endpoint", DEFAULT_ENDPOINT)
        if not usable_url(endpoint) or len(endpoint) > 2000:
            errors["config.endpoint"] = f"An http(s) URL ({DEFAULT_ENDPOINT} for Google's)."
        account: dict[str, str] = {}
        try:
            account = clean_service_account(secrets.get("service_account"))
        except ValueError as exc:
            errors["secrets.service_account"] = str(exc)
        project_id = config.get("project_id")
        if project_id is not None and not (
            isinstance(project_id, str) and _PROJECT_ID.fullmatch(project_id)
        ):
            errors["config.project_id"] = "A Google Cloud project id, e.g. my-app-1234."
        elif (
            project_id is None
            and account
            and not _PROJECT_ID.fullmatch(account.get("project_id", ""))
        ):
            errors["config.project_id"] = "Required: the service account names no usable one."
        errors.update(self.unknown_fields(config, secrets))
        if errors:
            raise ConfigError(errors)
        # (project_id stored only when given: a new key of another project then applies)
        cleaned = {"endpoint": endpoint}
        if project_id is not None:
            cleaned["project_id"] = project_id
        return cleaned, {"service_account": account}

    def transport(self, channel: str, config: dict, secrets: dict) -> Transport:
        return FcmTransport(config, secrets["service_account"])


# --- the access token ----------------------------------------------------------------------


class _GatedResponse(google_transport.Response):
    def __init__(self, answer: outbound.Answer) -> None:
        self._answer = answer

    @property
    def status(self) -> int:
        return self._answer.status

    @property
    def headers(self) -> dict[str, str]:
        return self._answer.headers

    @property
    def data(self) -> bytes:
        return self._answer.body


class TokenRefused(Exception):
    """The token endpoint answered other than 200 (raised by `GatedRequest`)."""

    def __init__(self, answer: outbound.Answer) -> None:
        super().__init__(f"token endpoint answered HTTP {answer.status}")
        self.answer = answer


class GatedRequest(google_transport.Request):
    """google-auth's HTTP, through the outbound gate: the token URI is the tenant's to set.

    Any answer but a 200 is raised (TokenRefused), not returned: google-auth would otherwise
    retry a 5xx or 429 itself, sleeping in the worker, where the platform has its own retry
    schedule and breaker. A gate's refusal or an unreachable endpoint is the gate's
    TransportError, which google-auth lets through."""

    label = "FCM token endpoint"

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> google_transport.Response:
        if method != "POST":
            # (the gate POSTs only; the JWT grant is a POST, nothing else is asked of it)
            raise google_exceptions.TransportError(f"only POST is sent, not {method}")
        data = body.encode() if isinstance(body, str) else (body or b"")
        # (the platform's timeout applies, not google-auth's: gated_post sets it)
        answer = gated_post(self.label, url, data, dict(headers or {}))
        if answer.status != 200:
            raise TokenRefused(answer)
        return _GatedResponse(answer)


class TokenCache:
    """Access tokens per service account key, until shortly before they expire: one grant
    an hour per key and process, not one per message. Bounded (least recently stored go)."""

    def __init__(self, max_size: int = MAX_CACHED_TOKENS) -> None:
        self._lock = threading.Lock()
        self._tokens: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()
        self._max_size = max_size

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            item = self._tokens.get(key)
            if item is None:
                return None
            if item[1] <= time.monotonic():
                del self._tokens[key]
                return None
            return item[0]

    def put(self, key: tuple[str, str, str], token: str, valid_for: float) -> None:
        if valid_for <= 0:
            return
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + valid_for)
            self._tokens.move_to_end(key)
            while len(self._tokens) > self._max_size:
                self._tokens.popitem(last=False)

    def forget(self, key: tuple[str, str, str], token: str) -> None:
        with self._lock:
            item = self._tokens.get(key)
            if item is not None and item[0] == token:
                del self._tokens[key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


tokens = TokenCache()


def token_key(account: dict[str, str]) -> tuple[str, str, str]:
    """The cache key of an account's tokens. The private key itself is part of it, not only
    its id: both are the tenant's to type, and another tenant's email and key id with a key
    of one's own must not get that tenant's cached token."""
    digest = hashlib.sha256(
        f"{account.get('private_key_id', '')}\n{account['private_key']}".encode()
    ).hexdigest()
    return account["client_email"], account["token_uri"], digest


def _grant_refused(exc: TokenRefused) -> TransportError:
    answer = exc.answer
    try:
        body = json.loads(answer.body) if answer.body else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    error = _short(body.get("error"))[:64]
    description = _short(body.get("error_description"))
    said = f"{error}: {description}" if error and description else error or description
    reason = f"the token endpoint refused the service account's grant (HTTP {answer.status}"
    reason += f", {said})" if said else ")"
    code = error or str(answer.status)
    if answer.status == 429:
        return TransportError(
            f"{reason}: retried later",
            permanent=False,
            retry_after=retry_after_seconds(answer.headers.get("Retry-After")),
            kind="throttled",
            code=code,
        )
    if answer.status >= 500 or error in TOKEN_ENDPOINT_TEMPORARY:
        return TransportError(
            f"{reason}: retried later", permanent=False, kind="provider_down", code=code
        )
    return TransportError(
        f"{reason}: not retried (fix the service account: a current key of an enabled account, "
        "its client_email and token_uri as in the key file)",
        permanent=True,
        kind="permanent",
        code=code,
        provider_fault=True,
    )


def access_token(account: dict[str, str]) -> tuple[str, bool]:
    """An access token for FCM, and whether it came from the cache."""
    key = token_key(account)
    cached = tokens.get(key)
    if cached is not None:
        return cached, True
    credentials = service_account.Credentials.from_service_account_info(
        account,
        scopes=[FCM_SCOPE],
        # google-auth's `aud` is always Google's token URL, whatever `token_uri` says; the
        # audience is the endpoint the assertion is for (RFC 7523), hence the one called.
        additional_claims={"aud": account["token_uri"]},
    )
    try:
        # refresh(), not before_request(): the latter also starts google-auth's Regional
        # Access Boundary lookup, a call to Google outside the gate.
        credentials.refresh(GatedRequest())
    except TokenRefused as exc:
        raise _grant_refused(exc) from None
    except google_exceptions.GoogleAuthError as exc:
        # (a 200 without an access token; its text quotes no secret, only the answer's shape)
        raise TransportError(
            f"the token endpoint's answer is not a token ({type(exc).__name__}): retried later",
            permanent=False,
            kind="provider_down",
        ) from None
    token = credentials.token
    if credentials.expiry is not None:
        # (google-auth's expiry is a naive UTC datetime)
        left = (credentials.expiry - datetime.now(UTC).replace(tzinfo=None)).total_seconds()
        tokens.put(key, token, left - REFRESH_MARGIN_SECONDS)
    return token, False


# --- the send ----------------------------------------------------------------------------


def _data(envelope: Envelope) -> dict[str, str]:
    """FCM's `data`: string values only. A push's custom values come as `extras`; `data`
    (a template's data) where given."""
    hints = envelope.provider_hints
    values = hints.get("data") or hints.get("extras") or {}
    if not isinstance(values, dict):
        return {}
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        for k, v in values.items()
    }


class FcmTransport(Transport):
    channel = "push"
    label = "FCM"

    def __init__(self, config: dict[str, Any], account: dict[str, str]) -> None:
        self.account = account
        self.project_id = config.get("project_id") or account["project_id"]
        endpoint = config.get("endpoint", DEFAULT_ENDPOINT).rstrip("/")
        self.url = f"{endpoint}/v1/projects/{quote(self.project_id, safe='')}/messages:send"

    def accepts(self, recipient: str) -> bool:
        return not recipient.lstrip().startswith("{")

    def send(self, envelope: Envelope) -> SendResult:
        message: dict[str, Any] = {
            "token": envelope.recipient,
            "notification": {"title": envelope.subject, "body": envelope.body or envelope.html},
        }
        data = _data(envelope)
        if data:
            message["data"] = data
        body = json.dumps({"message": message}, ensure_ascii=False).encode()
        token, cached = access_token(self.account)
        answer = self._post(body, token)
        if answer.status == 401 and cached and not self._fcm_code(answer):
            # A cached token can be revoked before its time: one more try with a fresh one.
            tokens.forget(token_key(self.account), token)
            token, _ = access_token(self.account)
            answer = self._post(body, token)
        return self._outcome(answer)

    def _post(self, body: bytes, token: str) -> outbound.Answer:
        return gated_post(
            self.label,
            self.url,
            body,
            {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json; charset=utf-8",
                "Accept": "application/json",
            },
        )

    @staticmethod
    def _error(answer: outbound.Answer) -> dict[str, Any]:
        try:
            body = json.loads(answer.body) if answer.body else {}
        except ValueError:
            return {}
        error = body.get("error") if isinstance(body, dict) else None
        return error if isinstance(error, dict) else {}

    @classmethod
    def _details(cls, answer: outbound.Answer, of_type: str) -> list[dict]:
        details = cls._error(answer).get("details")
        if not isinstance(details, list):
            return []
        return [d for d in details if isinstance(d, dict) and d.get("@type") == of_type]

    @classmethod
    def _fcm_code(cls, answer: outbound.Answer) -> str:
        for detail in cls._details(answer, FCM_ERROR_TYPE):
            if isinstance(detail.get("errorCode"), str):
                return detail["errorCode"][:64]
        return ""

    @classmethod
    def _about_the_token(cls, answer: outbound.Answer) -> bool:
        """Whether an INVALID_ARGUMENT is about the registration token (FCM names the field
        `message.token`, or says so in its message), not about the rest of the message."""
        for detail in cls._details(answer, BAD_REQUEST_TYPE):
            violations = detail.get("fieldViolations")
            if isinstance(violations, list) and any(
                isinstance(v, dict) and v.get("field") == "message.token" for v in violations
            ):
                return True
        return "registration token" in _short(cls._error(answer).get("message")).lower()

    def _outcome(self, answer: outbound.Answer) -> SendResult:
        status = answer.status
        if status == 200:
            try:
                name = json.loads(answer.body).get("name")
            except (ValueError, AttributeError):
                name = None
            if isinstance(name, str) and name:
                return SendResult(detail=f"accepted by FCM ({name})", provider_message_id=name)
            raise TransportError(
                "FCM answered 200 without a message name: not retried (check the provider's "
                "endpoint; the push may have been sent)",
                permanent=True,
                kind="permanent",
                code="200",
            )
        raise self._failure(answer)

    def _failure(self, answer: outbound.Answer) -> TransportError:
        """The refusal as a TransportError of its kind (FCM's errorCode, else its status)."""
        status = answer.status
        error = self._error(answer)
        fcm_code = self._fcm_code(answer)
        code = fcm_code or _short(error.get("status"))[:64] or str(status)
        message = _short(error.get("message"))
        reason = f"FCM refused the message (HTTP {status}): {code} {message}".rstrip()
        retry_after = retry_after_seconds(answer.headers.get("Retry-After"))
        if fcm_code in BAD_RECIPIENT_CODES or (
            code == "INVALID_ARGUMENT" and self._about_the_token(answer)
        ):
            return TransportError(
                reason + ": not retried (the device token is unregistered, or not one of this "
                "project's)",
                permanent=True,
                kind="bad_recipient",
                code=code,
            )
        if code == "QUOTA_EXCEEDED" or status == 429:
            return TransportError(
                reason + ": retried later",
                permanent=False,
                retry_after=retry_after,
                kind="throttled",
                code=code,
            )
        if code in ("UNAVAILABLE", "INTERNAL") or status >= 500:
            return TransportError(
                reason + ": retried later",
                permanent=False,
                retry_after=retry_after,
                kind="provider_down",
                code=code,
            )
        if code == "THIRD_PARTY_AUTH_ERROR":
            how = "fix the APNs certificate or Web Push key in the Firebase project"
        elif status in (401, 403):
            how = (
                f"the service account may not send for project {self.project_id}: enable the "
                "FCM API there and give the account the Firebase Cloud Messaging API Admin role"
            )
        elif status == 404:
            how = f"check the provider's project_id ({self.project_id})"
        elif code == "INVALID_ARGUMENT":
            how = "check the message: its data keys and size"
        else:
            how = "check the provider's settings"
        return TransportError(
            f"{reason}: not retried ({how})",
            permanent=True,
            kind="permanent",
            code=code,
            # (THIRD_PARTY_AUTH_ERROR is about one platform's devices, not the account)
            provider_fault=code != "THIRD_PARTY_AUTH_ERROR" and status in (401, 403, 404),
        )
