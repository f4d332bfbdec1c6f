"""Who a run was billed to, kept on its usage row after the account is deleted."""

from django.conf import settings
from django.db import migrations, models
from django.db.models import F, OuterRef, Subquery


def fill_accounts(apps, schema_editor):
    """Rows written before: their account is the (still existing) user."""
    usage = apps.get_model("metrics", "RunUsage")
    users = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    name = users.objects.filter(pk=OuterRef("user_id")).values("username")[:1]
    usage.objects.filter(user__isnull=False).update(account_id=F("user_id"), username=Subquery(name))


class Migration(migrations.Migration):

    dependencies = [
        ('metrics', '0004_runusage_request_id'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='runusage',
            name='account_id',
            field=models.PositiveBigIntegerField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name='runusage',
            name='username',
            field=models.CharField(blank=True, default='', max_length=150),
        ),
        migrations.RunPython(fill_accounts, migrations.RunPython.noop, elidable=True),
    ]
