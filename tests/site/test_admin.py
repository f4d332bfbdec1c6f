"""Staff can read usage, sessions and runs in the admin; nobody can edit them there."""

import pytest
from django.urls import reverse

from chat.models import ChatRun, ChatSession
from metrics.models import RunUsage

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    staff = django_user_model.objects.create_superuser("staff", password="staff-password-1")
    client.force_login(staff)
    return client


def test_admin_pages_list_sessions_runs_and_usage_read_only(staff_client, alice):
    from django.utils import timezone

    session = ChatSession.objects.create(session_id="s-1", user=alice, session_name="Herring")
    ChatRun.objects.create(run_id="r-1", session=session, user=alice, run_type="team", status="COMPLETED",
                           payload={"content": "hi"})
    now = timezone.now()
    RunUsage.objects.create(run_id="r-1", user=alice, session_id="s-1", team_id="cirkelline", status="completed",
                            total_tokens=42, started_at=now, finished_at=now)
    for name in ("admin:chat_chatsession_changelist", "admin:chat_chatrun_changelist",
                 "admin:metrics_runusage_changelist"):
        response = staff_client.get(reverse(name))
        assert response.status_code == 200, name
    page = staff_client.get(reverse("admin:chat_chatsession_changelist")).content.decode()
    assert "Herring" in page and "Cirkelline admin" in page
    assert staff_client.get(reverse("admin:chat_chatrun_change", args=[ChatRun.objects.get().pk])).status_code == 200
    assert staff_client.get(reverse("admin:chat_chatsession_add")).status_code == 403
    assert staff_client.get(reverse("admin:metrics_runusage_add")).status_code == 403
