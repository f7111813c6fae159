import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from compat.legacy_import import import_apps
from templates_store import selectors
from templates_store.legacy import convert_export, strip_sign
from templates_store.models import Template
from templates_store.services import render_template


@pytest.fixture
def apps_imported(db, legacy_export):  # noqa: ANN001, ANN201
    tenants, _ = import_apps(legacy_export.apps)
    return tenants


@pytest.fixture
def imported(apps_imported, legacy_export):  # noqa: ANN001, ANN201
    return convert_export(legacy_export)


def test_convert_export__legacy_data__every_template_exact_and_approved(imported, legacy_export):
    # Then every template converted without a difference on any known parameter set
    assert len(imported) == len(legacy_export.templates)
    assert [o.tpl_id for o in imported if o.mismatches or o.status == "needs_review"] == []
    assert all(o.approved for o in imported)
    assert sum(o.cases for o in imported) >= len(legacy_export.samples)


def test_convert_export__run_twice__no_new_versions(imported, legacy_export):
    # When
    convert_export(legacy_export)
    # Then
    for template in Template.all_tenants.all():
        assert template.versions.count() == 1


def test_converted_templates__historical_messages__rerender_to_what_the_gateway_sent(
    imported, legacy_export
):
    # Given the templates as stored and published by the import
    templates = {t.legacy_tpl_id: t for t in Template.all_tenants.select_related("tenant")}
    checked = 0
    for message in legacy_export.messages:
        template = templates.get(message["tpl_id"])
        if template is None:  # raw mail (content given, no template)
            continue
        # When
        rendered = render_template(template, message["tpl_params"])
        # Then
        sent = message["content"]
        assert rendered.body == (strip_sign(sent) if template.channel == "sms" else sent), message[
            "msg_id"
        ]
        if template.channel != "sms" and message["subject"] and template.versions.get().subject:
            assert rendered.subject == message["subject"], message["msg_id"]
        checked += 1
    assert checked > 2000


def test_convert_templates_command__legacy_data__summary_and_report(
    apps_imported, tmp_path, capsys
):
    # When
    report = tmp_path / "report.json"
    call_command("convert_templates", "--report", str(report))
    # Then
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["tenant", "templates", "exact"]
    total = next(row for row in rows if row.startswith("TOTAL")).split()
    assert total[1] == "60"
    assert total[5] == "0"  # mismatches
    entries = json.loads(report.read_text())
    assert {entry["status"] for entry in entries} <= {"exact", "exact_with_warnings"}


def test_convert_templates_command__no_tenants_yet__says_to_import_first(db):
    with pytest.raises(CommandError, match="import_legacy"):
        call_command("convert_templates")


def test_convert_export__app_not_a_tenant__its_templates_skipped(db, legacy_export):
    # Given only the first app imported
    import_apps(legacy_export.apps[:1])
    # When
    outcomes = convert_export(legacy_export)
    # Then
    assert outcomes
    assert {o.tenant for o in outcomes} == {Template.all_tenants.first().tenant.slug}


def test_convert_templates_command__one_tenant__only_its_templates(apps_imported, capsys):
    call_command("convert_templates", "--tenant", "bank")
    assert set(Template.all_tenants.values_list("tenant__slug", flat=True)) == {"bank"}


def test_locale_fallback__zh_cn__falls_back_to_zh_then_default():
    assert selectors.locale_chain("zh-CN") == ["zh-CN", "zh", ""]
    assert selectors.locale_chain("") == [""]
