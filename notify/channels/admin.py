"""A tenant's providers in Django admin: configuration visible, secrets write-only (a blank
field keeps the stored ones), every change validated by the provider's kind."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin

from notify.channels import breaker, registry
from notify.channels.models import Provider
from notify.channels.providers import KINDS, ConfigError, kind_of
from notify.channels.services import stored_secrets


class ProviderForm(forms.ModelForm):
    channel = forms.ChoiceField(choices=registry.choices())
    kind = forms.ChoiceField(choices=[(k.name, k.label) for k in KINDS.values()])
    new_secrets = forms.JSONField(
        required=False,
        label="Secrets",
        help_text='A JSON object, e.g. {"secret": "…"}. Never shown again; leave empty to '
        "keep the stored ones.",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )

    class Meta:
        model = Provider
        fields = (
            "tenant",
            "channel",
            "kind",
            "name",
            "config",
            "priority",
            "timeout",
            "send_rate",
            "enabled",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        secrets = {**stored_secrets(self.instance), **(data.get("new_secrets") or {})}
        try:
            kind = kind_of(data["kind"])
            if data["channel"] not in kind.channels:
                raise ConfigError(
                    {"channel": f"A {kind.name} provider carries {', '.join(kind.channels)}."}
                )
            if not isinstance(data.get("config"), dict):
                raise ConfigError({"config": "A JSON object."})
            data["config"], self._secrets = kind.clean(data["config"], secrets)
        except ConfigError as exc:
            raise forms.ValidationError([f"{k}: {v}" for k, v in exc.errors.items()]) from None
        return data

    def save(self, commit: bool = True) -> Provider:
        provider = super().save(commit=False)
        provider.secrets = json.dumps(self._secrets)
        if commit:
            provider.save()
        return provider


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = (
        "name",
        "tenant",
        "channel",
        "kind",
        "priority",
        "enabled",
        "circuit",
        "secrets_set",
    )
    list_filter = ("channel", "kind", "enabled", "tenant")
    search_fields = ("name", "tenant__slug")
    readonly_fields = ("circuit_history", "created_at", "updated_at")

    @admin.display(description="circuit")
    def circuit(self, provider: Provider) -> str:
        shown = breaker.shown_state(provider.pk)
        # a Web Push provider's breakers are per push service: the open ones are named
        scoped_open = [
            circuit.partition("@")[2]
            for circuit in breaker.scoped_circuits(provider.pk)
            if breaker.shown_state(circuit) != breaker.CLOSED
        ]
        return f"{shown}; not closed for {', '.join(scoped_open)}" if scoped_open else shown

    @admin.display(description="secrets set")
    def secrets_set(self, provider: Provider) -> str:
        return ", ".join(sorted(stored_secrets(provider))) or "-"

    @admin.display(description="circuit changes (oldest first)")
    def circuit_history(self, provider: Provider) -> str:
        if provider.pk is None:
            return "-"
        lines = [", ".join(t["state"] for t in breaker.transitions(provider.pk))]
        for circuit in breaker.scoped_circuits(provider.pk):
            states = ", ".join(t["state"] for t in breaker.transitions(circuit))
            lines.append(f"{circuit.partition('@')[2]}: {states}")
        return "; ".join(line for line in lines if line) or "-"
