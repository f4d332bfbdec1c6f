"""Where a session's name comes from (ChatSession.named_by): the model names a session only while it
has its first message's name. Sessions the user renamed before (their stored agno session data holds
the name they gave) are marked as named by the user."""

from django.db import migrations, models


def mark_user_names(apps, schema_editor):
    ChatSession = apps.get_model("chat", "ChatSession")
    ChatSession.objects.filter(data__session_data__has_key="session_name").update(named_by="user")


class Migration(migrations.Migration):

    dependencies = [
        ("chat", "0002_token_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="chatsession",
            name="named_by",
            field=models.CharField(choices=[("message", "its first message"), ("model", "the model"),
                                            ("user", "the user")], db_default="message", max_length=8),
        ),
        migrations.RunPython(mark_user_names, migrations.RunPython.noop),
    ]
