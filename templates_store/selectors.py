from django.db.models import QuerySet

from notify.tenants.models import Tenant
from templates_store.models import Template, TemplateVersion


def list_templates(tenant: Tenant) -> QuerySet[Template]:
    return Template.objects.for_tenant(tenant).order_by("key")


def get_template(tenant: Tenant, key: str) -> Template | None:
    return Template.objects.for_tenant(tenant).filter(key=key).first()


def locale_chain(locale: str) -> list[str]:
    """`zh-CN` → [`zh-CN`, `zh`, ``]: the exact locale, its language, then the default."""
    chain: list[str] = []
    locale = locale.strip().replace("_", "-")
    while locale:
        if locale not in chain:
            chain.append(locale)
        locale = locale.rpartition("-")[0]
    chain.append("")
    return chain


def published_version(template: Template, locale: str = "") -> TemplateVersion | None:
    """The published version for `locale`, falling back to its language, then the default."""
    chain = locale_chain(locale)
    candidates = {
        version.locale: version
        for version in template.versions.filter(published=True, locale__in=chain)
    }
    return next((candidates[name] for name in chain if name in candidates), None)


def get_version(template: Template, number: int, locale: str = "") -> TemplateVersion | None:
    return template.versions.filter(number=number, locale=locale).first()
