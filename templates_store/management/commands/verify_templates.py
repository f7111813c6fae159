import difflib
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from templates_store.legacy import read_jsonl
from templates_store.velocity.converter import convert
from templates_store.velocity.engine import Engine

FIELDS = (("subject", "expected_subject"), ("content", "expected_content"))


class Command(BaseCommand):
    help = (
        "Converts each template of a legacy templates.jsonl, renders each sample of a "
        "samples.jsonl with the new engine and compares with expected_subject/expected_content. "
        "Prints one line (and a diff) per differing sample, then 'N passed, M failed'; exits 1 "
        "if any failed."
    )
    requires_system_checks = []

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--templates", type=Path, required=True)
        parser.add_argument("--samples", type=Path, required=True)

    def handle(self, *args: object, templates: Path, samples: Path, **options: object) -> None:
        for path in (templates, samples):
            if not path.exists():
                raise CommandError(f"{path}: no such file")
        try:
            template_rows, sample_rows = read_jsonl(templates), read_jsonl(samples)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"not a JSON-lines file: {exc}") from exc
        rows = {
            row["tpl_id"]: row for row in template_rows if isinstance(row, dict) and "tpl_id" in row
        }
        engine = Engine(autoescape=False)
        converted: dict[tuple[str, str], tuple[str | None, str]] = {}
        passed = failed = 0
        for number, sample in enumerate(sample_rows, start=1):
            if not isinstance(sample, dict):
                failed += 1
                self.stdout.write(f"FAIL sample {number}: not a JSON object")
                continue
            tpl_id = sample.get("tpl_id", "")
            label = f"sample {number} ({tpl_id})"
            row = rows.get(tpl_id)
            if row is None:
                failed += 1
                self.stdout.write(f"FAIL {label}: template not found")
                continue
            problems = []
            for field, expected_key in FIELDS:
                if expected_key not in sample:
                    continue
                source = row.get(field) or ""
                if (tpl_id, field) not in converted:
                    try:
                        conversion = convert(source, channel=row.get("channel"))
                        converted[tpl_id, field] = (conversion.source, conversion.status)
                    except RecursionError:
                        converted[tpl_id, field] = (None, "nested too deeply to convert")
                jinja, status = converted[tpl_id, field]
                expected = sample[expected_key]
                if jinja is None:
                    problems.append(f"{field}: not converted ({status})")
                    continue
                try:
                    actual = engine.render(jinja, sample.get("params") or {}) if source else ""
                except Exception as exc:  # reported per sample, like any difference
                    problems.append(f"{field}: render error: {type(exc).__name__}: {exc}")
                    continue
                if actual != expected:
                    diff = "".join(
                        difflib.unified_diff(
                            expected.splitlines(keepends=True),
                            actual.splitlines(keepends=True),
                            fromfile=f"{field} expected",
                            tofile=f"{field} rendered",
                        )
                    )
                    problems.append(f"{field} differs\n{diff}")
            if problems:
                failed += 1
                self.stdout.write(f"FAIL {label}: " + "; ".join(problems))
            else:
                passed += 1
        self.stdout.write(f"{passed} passed, {failed} failed")
        if failed:
            sys.exit(1)
