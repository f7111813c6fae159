import json
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from templates_store.legacy import LegacyExport, convert_export, tenants_of

COLUMNS = ("exact", "exact_with_warnings", "needs_review")


class Command(BaseCommand):
    help = (
        "Converts every Velocity template of the legacy apps already imported as tenants to the "
        "new engine, verifies each against the old engine on all known parameter sets (samples and "
        "historical messages) and prints a summary. Exact conversions with no difference are "
        "approved and published."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--data", type=Path, default=None, help="legacy export directory")
        parser.add_argument("--tenant", default=None, help="only this tenant (slug)")
        parser.add_argument("--report", type=Path, default=None, help="write a JSON report")
        parser.add_argument("--no-approve", action="store_true", help="approve nothing")

    def handle(self, *args: object, **options: object) -> None:
        data_dir: Path = options["data"] or settings.LEGACY_DATA_DIR
        if not (data_dir / "templates.jsonl").exists():
            raise CommandError(f"no templates.jsonl in {data_dir}")
        export = LegacyExport.read(data_dir)
        tenants = tenants_of(export)
        if not tenants:
            raise CommandError(
                "none of the export's apps is a tenant yet: run `manage.py import_legacy` first"
            )
        outcomes = convert_export(
            export,
            tenants=tenants,
            tenant_slug_filter=options["tenant"],
            approve=not options["no_approve"],
            progress=lambda rows: tqdm(rows, desc="converting", unit="tpl", file=self.stderr._out),
        )
        if options["report"]:
            options["report"].write_text(
                json.dumps([o.to_dict() for o in outcomes], ensure_ascii=False, indent=2)
            )
        self._summary(outcomes)

    def _summary(self, outcomes: list) -> None:  # noqa: ANN001
        by_tenant: dict[str, Counter] = {}
        for outcome in outcomes:
            counts = by_tenant.setdefault(outcome.tenant, Counter())
            counts[outcome.status] += 1
            counts["mismatches"] += bool(outcome.mismatches)
            counts["cases"] += outcome.cases
            counts["approved"] += outcome.approved
            counts["templates"] += 1
        header = (
            "tenant",
            "templates",
            "exact",
            "warnings",
            "needs review",
            "mismatches",
            "cases",
            "approved",
        )
        rows = [
            (
                tenant,
                c["templates"],
                *(c[k] for k in COLUMNS),
                c["mismatches"],
                c["cases"],
                c["approved"],
            )
            for tenant, c in sorted(by_tenant.items())
        ]
        total = Counter()
        for counts in by_tenant.values():
            total.update(counts)
        rows.append(
            (
                "TOTAL",
                total["templates"],
                *(total[k] for k in COLUMNS),
                total["mismatches"],
                total["cases"],
                total["approved"],
            )
        )
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        line = "  ".join
        self.stdout.write(line(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            self.stdout.write(line(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
        for outcome in outcomes:
            if outcome.status == "needs_review" or outcome.mismatches:
                first = (outcome.issues or [{}])[0]
                where = f" line {first.get('line')}:{first.get('column')}" if first else ""
                self.stdout.write(
                    f"  {outcome.tpl_id} ({outcome.tenant}): {outcome.status}, "
                    f"{outcome.mismatches} mismatch(es){where} {first.get('message', '')}".rstrip()
                )
