from django.db import migrations, models
from django.db.models import Q


def converted_versions_render_as_velocity(apps, schema_editor):
    version_model = apps.get_model("templates_store", "TemplateVersion")
    version_model.objects.filter(
        ~Q(legacy_subject="") | ~Q(legacy_body="") | ~Q(conversion_status="")
    ).update(engine="velocity")


def velocity_versions_back_to_jinja2(apps, schema_editor):
    version_model = apps.get_model("templates_store", "TemplateVersion")
    version_model.objects.filter(engine="velocity").update(engine="jinja2")


class Migration(migrations.Migration):
    dependencies = [("templates_store", "0001_initial")]

    operations = [
        migrations.AlterField(
            model_name="templateversion",
            name="engine",
            field=models.CharField(
                choices=[
                    ("jinja2", "Jinja2 (sandboxed)"),
                    ("velocity", "Converted Velocity (sandboxed)"),
                ],
                default="jinja2",
                max_length=16,
            ),
        ),
        migrations.RunPython(
            converted_versions_render_as_velocity, velocity_versions_back_to_jinja2
        ),
    ]
