from django.db import migrations

from notify.messaging.ids import PG_SEQUENCE_NAME


def create_sequence(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS {PG_SEQUENCE_NAME} CACHE 1")


def drop_sequence(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP SEQUENCE IF EXISTS {PG_SEQUENCE_NAME}")


class Migration(migrations.Migration):
    dependencies = [("messaging", "0001_initial")]
    operations = [migrations.RunPython(create_sequence, drop_sequence)]
