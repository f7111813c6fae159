from datetime import timedelta

from django.db import migrations, models
from django.db.models import F

# blobs stored before retention existed: kept this long after they were stored
EXISTING_RETENTION = timedelta(days=7)


def keep_existing(apps, schema_editor):  # noqa: ANN001, ANN201
    AttachmentBlob = apps.get_model("messaging", "AttachmentBlob")  # noqa: N806
    AttachmentBlob._base_manager.update(keep_until=F("created_at") + EXISTING_RETENTION)


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0022_fewer_message_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="attachmentblob",
            name="keep_until",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(keep_existing, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="attachmentblob",
            name="keep_until",
            field=models.DateTimeField(db_index=True),
        ),
    ]
