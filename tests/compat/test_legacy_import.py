"""`manage.py import_legacy`: the old gateway's export brought over, verifiably, once."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from compat.models import LegacyMessage
from notify.tenants.models import Tenant
from templates_store.models import Template, TemplateVersion


@pytest.fixture(scope="module")
def small_export(tmp_path_factory, legacy_export):  # noqa: ANN001, ANN201
    """The export with two apps, their templates and 300 of their messages."""
    import json

    directory = tmp_path_factory.mktemp("export")
    keys = {legacy_export.apps[0]["app_key"], legacy_export.apps[4]["app_key"]}
    rows = {
        "apps": [a for a in legacy_export.apps if a["app_key"] in keys],
        "templates": [t for t in legacy_export.templates if t["app_key"] in keys],
        "samples": legacy_export.samples,
        "messages": [m for m in legacy_export.messages if m["app_key"] in keys][:300],
    }
    for name, items in rows.items():
        with (directory / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    return directory, rows


def test_import_legacy__export__tenants_templates_history_and_matching_checksums(
    db, small_export, capsys
):
    directory, rows = small_export
    # When
    call_command("import_legacy", str(directory), "--no-progress")
    # Then
    out = capsys.readouterr().out
    assert Tenant.objects.count() == 2
    for app in rows["apps"]:
        tenant = Tenant.objects.get(app_key=app["app_key"])
        assert tenant.app_secret == app["app_secret"]
        assert tenant.stage == Tenant.Stage.LEGACY
        assert tenant.is_active == (app["status"] == 1)
    assert Template.all_tenants.count() == len(rows["templates"])
    assert LegacyMessage.all_tenants.count() == 300
    table_lines = [
        line
        for line in out.splitlines()
        if line.split()[:1] in (["apps"], ["templates"], ["messages"])
    ]
    assert len(table_lines) == 3 and all(line.endswith("yes") for line in table_lines)
    assert "messages.jsonl  300    300" in out


def test_import_legacy__second_run__changes_nothing(db, small_export, capsys):
    directory, _ = small_export
    call_command("import_legacy", str(directory), "--no-progress", "--stage", "new")
    versions = TemplateVersion.objects.count()
    # When
    call_command("import_legacy", str(directory), "--no-progress")
    # Then
    out = capsys.readouterr().out
    assert "messages.jsonl  300    0        0        300" in out
    assert TemplateVersion.objects.count() == versions
    assert set(Tenant.objects.values_list("stage", flat=True)) == {Tenant.Stage.NEW}


def test_import_legacy__message_changed_at_the_old_gateway__updated(db, small_export, tmp_path):
    import json
    import shutil

    directory, rows = small_export
    call_command("import_legacy", str(directory), "--no-progress")
    changed = tmp_path / "export"
    shutil.copytree(directory, changed)
    messages = [dict(m) for m in rows["messages"]]
    messages[0].update(status=2, report_time="2026-11-01 10:00:00")
    (changed / "messages.jsonl").write_text(
        "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages), encoding="utf-8"
    )
    # When
    call_command("import_legacy", str(changed), "--no-progress")
    # Then
    row = LegacyMessage.all_tenants.get(pk=messages[0]["msg_id"])
    assert (row.status, row.report_time) == (2, "2026-11-01 10:00:00")


def test_import_legacy__no_export_there__clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="no apps.jsonl"):
        call_command("import_legacy", str(tmp_path))
