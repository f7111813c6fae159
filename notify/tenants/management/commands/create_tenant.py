from django.core.management.base import BaseCommand, CommandError

from notify.tenants.services import create_tenant


class Command(BaseCommand):
    help = "Creates a tenant and an API key; the key is printed on the last line."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("slug")
        parser.add_argument("--name", default="")

    def handle(self, *args: object, slug: str, name: str, **options: object) -> None:
        try:
            tenant, raw_key = create_tenant(slug, name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created tenant {tenant.slug} ({tenant.name}). API key, shown once:")
        self.stdout.write(raw_key)
