from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from notify.api.validation import PRINTABLE_TOKEN
from notify.tenants.models import ApiKey, Tenant
from notify.tenants.selectors import api_key_for

# last_used_at is for humans auditing keys; one write a minute per key is plenty.
LAST_USED_PRECISION = timedelta(minutes=1)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`. request.user is the tenant; request.auth the ApiKey."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Tenant, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        raw_key = raw_key.strip()
        if scheme.lower() != self.keyword.lower() or not raw_key:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <api key>'.")
        if not PRINTABLE_TOKEN.fullmatch(raw_key):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        api_key = api_key_for(raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.is_revoked:
            raise exceptions.AuthenticationFailed("API key revoked.")
        if not api_key.tenant.is_active:
            raise exceptions.AuthenticationFailed("Tenant disabled.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_PRECISION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now  # (the copy kept for the next calls knows it too)
        return api_key.tenant, api_key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "notify.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict:
        return {"type": "http", "scheme": "bearer", "description": "A tenant's API key"}
