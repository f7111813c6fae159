from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from compat.legacy_import import ImportReport, import_export
from notify.tenants.models import Tenant
from templates_store.legacy import LegacyExport


class Command(BaseCommand):
    help = (
        "Imports the legacy gateway's export (DIR with apps.jsonl, templates.jsonl, "
        "messages.jsonl, samples.jsonl): apps become tenants keeping app_key and app_secret, "
        "templates are converted and verified (those needing review are imported, flagged), "
        "messages are kept so old msg_ids stay queryable. Idempotent. Prints a verification "
        "report: counts per file and tenant, and per table a checksum of the source rows and "
        "one of the stored rows."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("directory", type=Path, help="the export's directory")
        parser.add_argument(
            "--stage",
            choices=[Tenant.Stage.LEGACY, Tenant.Stage.NEW],
            default=Tenant.Stage.LEGACY,
            help="the stage new tenants start on (default: legacy, proxied to the old gateway)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args: object, **options: object) -> None:
        directory: Path = options["directory"]
        if not (directory / "apps.jsonl").exists():
            raise CommandError(f"no apps.jsonl in {directory}")
        try:
            export = LegacyExport.read(directory)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read the export in {directory}: {exc}") from exc
        quiet = options["no_progress"]

        def progress(rows, what, total):  # noqa: ANN001, ANN202
            if quiet:
                return rows
            return tqdm(
                rows,
                desc=what,
                total=total,
                unit="chunk" if what == "messages" else "tpl",
                file=self.stderr._out,
            )

        report = import_export(export, stage=options["stage"], progress=progress)
        self._print(export, report)
        if not report.ok:
            raise CommandError("verification failed: a stored table differs from its source")

    def _print(self, export: LegacyExport, report: ImportReport) -> None:
        write = self.stdout.write
        needs_review = sum(
            1 for o in report.templates if o.status == "needs_review" or o.mismatches
        )
        write("file            rows   created  updated  unchanged  skipped")
        write(
            f"apps.jsonl      {len(export.apps):<6} {report.apps['created']:<8} "
            f"{report.apps['updated']:<8} {report.apps['unchanged']:<10} 0"
        )
        converted = len(report.templates)
        write(
            f"templates.jsonl {len(export.templates):<6} converted {converted}, "
            f"approved {sum(o.approved for o in report.templates)}, "
            f"needs review {needs_review}, skipped {len(export.templates) - converted}"
        )
        m = report.messages
        write(
            f"messages.jsonl  {len(export.messages):<6} {m['created']:<8} {m['updated']:<8} "
            f"{m['unchanged']:<10} {m['skipped']}"
        )
        write("")
        write("tenant          templates  messages  needs review")
        for slug, counts in sorted(report.per_tenant.items()):
            write(
                f"{slug:<15} {counts['templates']:<10} {counts['messages']:<9} "
                f"{counts['needs_review']}"
            )
        write("")
        write("table      source  stored  source checksum   stored checksum   match")
        for table in report.tables:
            write(
                f"{table.name:<10} {table.source_rows:<7} {table.stored_rows:<7} "
                f"{table.source_checksum}  {table.stored_checksum}  "
                f"{'yes' if table.ok else 'NO'}"
            )
        for outcome in report.templates:
            if outcome.status == "needs_review" or outcome.mismatches:
                first = (outcome.issues or [{}])[0]
                write(
                    f"  needs review: {outcome.tpl_id} ({outcome.tenant}): {outcome.status}, "
                    f"{outcome.mismatches} mismatch(es) {first.get('message', '')}".rstrip()
                )
