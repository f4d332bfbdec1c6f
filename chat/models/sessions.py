"""Chat sessions and runs, as agno stores them (indexed columns + the JSON payload).

A session belongs to one user. Its `data` holds what agno keeps on the session (session
state, session metrics, team data, metadata, summary) but never its runs: runs are rows of
their own, one per team run and one per member run, so listing sessions never touches run
payloads and loading history reads only the last few top-level runs.

Queries about many rows are QuerySet methods (`ChatSession.objects.page(...)`,
`ChatRun.objects.find(...)`), always scoped to an owner; they are sync (the ORM), and async
code calls them through chat.storage.executor.run_db. The JSON fields' encoder is chat.payload's.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import models, transaction
from django.dispatch import Signal
from django.utils import timezone

from chat.errors import BadRequest, SessionNotFound
from chat.payload import PayloadEncoder
from chat.records import session_record

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# Orders GET /sessions accepts (`sort_by`), by column.
SESSION_SORT_FIELDS = {"created_at": "created_at", "updated_at": "updated_at", "session_name": "session_name"}
# Stored run statuses agno leaves out of a session's history (agno.db.utils.HISTORY_SKIP_STATUSES,
# whose values tests/agents/test_agno_drift.py compares with these: nothing here imports agno).
HISTORY_SKIP_STATUSES = ("PAUSED", "CANCELLED", "ERROR", "REGENERATED")
# A run still in progress, stored as it started (the user's message, no answer: chat.runs puts a
# run on record when it is admitted). It is no part of another run's history, and the session
# routes show runs once they have ended, as AgentOS does (a client reading a session mid-run must
# not get an empty answer in place of the one it is streaming); GET /teams/{team}/runs/{run_id}
# shows it (ChatRunQuerySet.find).
RUNNING_STATUS = "RUNNING"
# A stored run the user stopped (agno's RunStatus.cancelled): the session's next run is told.
CANCELLED_STATUS = "CANCELLED"
COMPLETED_STATUS = "COMPLETED"


class NamedBy(models.TextChoices):
    """Where a session's name comes from. The model names a session only while it still has its
    first message's name, and a name the user gave is never replaced (chat.runs.naming)."""

    MESSAGE = "message", "its first message"
    MODEL = "model", "the model"
    USER = "user", "the user"


_SESSION_COLUMNS = ("session_id", "user_id", "session_type", "team_id", "session_name", "data", "created_at",
                    "updated_at")


def validate_session_id(value: object) -> str:
    """A session (or run) id as clients may send one: 1-64 letters, digits, '-', '_', '.' or ':'."""
    if not isinstance(value, str) or not SESSION_ID_RE.match(value):
        raise BadRequest(400, "Invalid session id: use 1-64 letters, digits, '-', '_', '.' or ':'.")
    return value


class ChatSessionQuerySet(models.QuerySet):
    """The session queries of the API and of a run's claim, always scoped to an owner.

    Sync (the ORM); from async code call them through chat.storage.executor.run_db.
    """

    def owned_by(self, user_pk: int) -> ChatSessionQuerySet:
        return self.filter(user_id=user_pk)

    def shown_to(self, user_pk: int) -> ChatSessionQuerySet:
        """The user's sessions as the API shows them: those with at least one stored run.

        A run claims its session when it is admitted, but until a run of it is stored the session
        is the run's internal claim: listed, read, renamed or deleted, it is "not found", as
        AgentOS answers before it stores a session. (agent-ui reads `GET /sessions/{id}/runs`
        while the first answer streams; an empty array there replaced the chat it was showing.)
        """
        return self.owned_by(user_pk).filter(models.Exists(ChatRun.objects.ended().filter(
            session_id=models.OuterRef("pk"))))

    def is_owned(self, user_pk: int, session_id: str) -> bool:
        return self.owned_by(user_pk).filter(session_id=session_id).exists()

    def page(self, user_pk: int, *, limit: int = 20, page: int = 1, sort_by: str | None = None,
             sort_order: str | None = None, session_name: str | None = None,
             component_id: str | None = None) -> tuple[list[dict], int]:
        """One page of the user's shown sessions (session columns only: no run payload is loaded) and the total."""
        qs = self.shown_to(user_pk)
        if session_name:
            qs = qs.filter(session_name__icontains=session_name)
        if component_id:
            qs = qs.filter(team_id=component_id)
        field = SESSION_SORT_FIELDS.get(sort_by or "created_at", "created_at")
        ascending = (sort_order or "desc").lower() == "asc"
        order = (field, "id") if ascending else (f"-{field}", "-id")
        total = qs.count()
        offset = (page - 1) * limit
        return list(qs.order_by(*order).values(*_SESSION_COLUMNS)[offset : offset + limit]), total

    def detail(self, user_pk: int, session_id: str) -> dict | None:
        """The user's shown session as an agno session record with all its runs (team and member), or None."""
        row = self.shown_to(user_pk).filter(session_id=session_id).first()
        if row is None:
            return None
        return session_record(row, list(row.runs.exclude(status=RUNNING_STATUS).order_by("id")
                                        .values_list("payload", flat=True)))

    def run_payloads(self, user_pk: int, session_id: str) -> list[dict] | None:
        """The payloads of all the runs of the user's shown session, oldest first; None if it is not shown to them."""
        session = self.shown_to(user_pk).filter(session_id=session_id).values("pk").first()
        if session is None:
            return None
        return list(ChatRun.objects.ended().filter(session_id=session["pk"]).order_by("id")
                    .values_list("payload", flat=True))

    def run_page(self, user_pk: int, session_id: str, *, limit: int,
                 before: str | None = None) -> tuple[list[dict], str | None] | None:
        """One page of the runs of the user's shown session, and the cursor of the page before it.

        A page holds the `limit` latest ended team runs (top-level runs) stored before the team
        run `before` (all of them up to the latest without it), with the member runs each one
        delegated to, in stored order (oldest first, as run_payloads). Stored order is admission
        order: a run's own row is written when it is admitted. The cursor is the run id of the
        page's oldest team run when older ones exist, else None. None if the session is not shown
        to the user; BadRequest if `before` is not a team run of it.

        One query whatever the page size: the page's team runs by chat_run_history (session,
        parent_run_id IS NULL, id descending, limit + 1 to know whether more exist) and their
        member runs by the parent_run_id index, with the owner check (the session's pk, by its
        unique session_id) and the cursor (its row id, by the unique run_id) as subqueries. A page
        that comes back empty takes a second query, to tell an unknown session, a bad cursor and
        an empty page apart.
        """
        session = models.Subquery(self.shown_to(user_pk).filter(session_id=session_id).values("pk")[:1])
        team_runs = ChatRun.objects.ended().filter(session_id=session, parent_run_id__isnull=True)
        if before is not None:
            cursor_row = ChatRun.objects.filter(session_id=session, run_id=before, parent_run_id__isnull=True)
            team_runs = team_runs.filter(pk__lt=models.Subquery(cursor_row.values("pk")[:1]))
        team_runs = team_runs.order_by("-pk")
        rows = list(
            ChatRun.objects.ended().filter(session_id=session)
            .filter(models.Q(pk__in=team_runs.values("pk")[: limit + 1])
                    | models.Q(parent_run_id__in=team_runs.values("run_id")[:limit]))
            .order_by("pk").values_list("run_id", "parent_run_id", "payload")
        )
        if not rows:
            found = self.shown_to(user_pk).filter(session_id=session_id).annotate(cursor=models.Exists(
                ChatRun.objects.filter(session_id=models.OuterRef("pk"), run_id=before or "",
                                       parent_run_id__isnull=True))).values("cursor").first()
            if found is None:
                return None
            if before is not None and not found["cursor"]:
                raise BadRequest(400, "'before' must be the id of a team run of this session, as the previous "
                                      "page's cursor gives it.")
            return [], None
        team_ids = [run_id for run_id, parent, _ in rows if parent is None]
        cursor = None
        if len(team_ids) > limit:  # one more than a page: the oldest is the next page's
            rows = [row for row in rows if row[0] != team_ids[0]]
            cursor = team_ids[1]
        return [payload for _, _, payload in rows], cursor

    def rename(self, user_pk: int, session_id: str, name: str) -> dict | None:
        """Rename the user's shown session; its agno session record, or None if it is not shown to them."""
        with transaction.atomic():
            row = self.select_for_update().shown_to(user_pk).filter(session_id=session_id).first()
            if row is None:
                return None
            data = dict(row.data or {})
            data["session_data"] = {**(data.get("session_data") or {}), "session_name": name}
            row.data = data
            row.session_name = name
            row.named_by = NamedBy.USER  # the model never names it again (name_by_model)
            row.updated_at = timezone.now()
            row.save(update_fields=["data", "session_name", "named_by", "updated_at"])
            return session_record(row)

    def name_by_model(self, user_pk: int, session_id: str, name: str) -> bool:
        """Give the user's session the model's `name` if it still has its first message's name; whether it did.

        One conditional UPDATE, so a rename by the user racing it wins either way: committed
        first, it leaves nothing to match; committed after, it overwrites. `updated_at` stays:
        a name is not activity (the chat list is ordered by it). The naming call runs it as a
        prepared statement (chat.storage.prepared), which is tested against this.
        """
        return bool(self.owned_by(user_pk).filter(session_id=session_id, named_by=NamedBy.MESSAGE)
                    .update(session_name=name, named_by=NamedBy.MODEL))

    def awaiting_name(self, user_pk: int, session_id: str) -> bool:
        """Whether the user's session still has its first message's name and exactly one answer
        (one completed top-level run): the moment the model names it (chat.runs.naming, which runs
        it as a prepared statement, chat.storage.prepared, tested against this)."""
        session = self.owned_by(user_pk).filter(session_id=session_id, named_by=NamedBy.MESSAGE).values("pk").first()
        if session is None:
            return False
        answers = ChatRun.objects.filter(session_id=session["pk"], parent_run_id__isnull=True, status=COMPLETED_STATUS)
        return len(answers.values_list("pk", flat=True)[:2]) == 1

    def remove(self, user_pk: int, session_id: str) -> bool:
        """Delete the user's shown session and its runs; False if they have no such session shown."""
        deleted, _ = self.shown_to(user_pk).filter(session_id=session_id).delete()
        return deleted > 0

    def for_run(self, session_id: str, user_pk: int | None, history_runs: int) -> dict | None:
        """The agno session record a run continues, with its last `history_runs` top-level runs.

        None if there is no such session; SessionNotFound if it is another user's (`user_pk`
        None: anyone's, for tooling outside a run).
        """
        row = self.filter(session_id=session_id).values("pk", *_SESSION_COLUMNS).first()
        if row is None:
            return None
        if user_pk is not None and row["user_id"] != user_pk:
            raise SessionNotFound(session_id)
        return session_record(row, ChatRun.objects.history(row["pk"], history_runs))


class ChatRunQuerySet(models.QuerySet):
    def ended(self) -> ChatRunQuerySet:
        """Runs that are not in progress (what the session routes show)."""
        return self.exclude(status=RUNNING_STATUS)

    def history(self, session_pk: int, limit: int) -> list[dict]:
        """The payloads of a session's last `limit` top-level runs agno keeps in history, oldest first."""
        if limit <= 0:
            return []
        rows = (
            self.filter(session_id=session_pk, parent_run_id__isnull=True)
            .exclude(status__in=(*HISTORY_SKIP_STATUSES, RUNNING_STATUS))
            .order_by("-id")
            .values_list("payload", flat=True)[:limit]
        )
        return list(reversed(list(rows)))

    def find(self, user_pk: int, run_id: str) -> dict | None:
        """A stored run of the user's (team or member): its id, status, payload and session id, or None."""
        return (
            self.filter(run_id=run_id, user_id=user_pk)
            .values("run_id", "status", "payload", "session__session_id", "parent_run_id", "component_id")
            .first()
        )

    def payload(self, run_id: str) -> dict | None:
        return self.filter(run_id=run_id).values_list("payload", flat=True).first()


class ChatSession(models.Model):
    session_id = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    session_type = models.CharField(max_length=16, default="team")
    team_id = models.CharField(max_length=64, blank=True, default="")
    session_name = models.CharField(max_length=255, blank=True, default="")
    # A database default: the claim inserts sessions with prepared SQL that names its columns.
    named_by = models.CharField(max_length=8, choices=NamedBy.choices, db_default=NamedBy.MESSAGE)
    data = models.JSONField(default=dict, encoder=PayloadEncoder)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ChatSessionQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["user", "-updated_at"], name="chat_session_user_recent")]

    def __str__(self) -> str:
        return self.session_name or self.session_id


class ChatRun(models.Model):
    run_id = models.CharField(max_length=64, unique=True)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="runs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_runs")
    # Set on member runs: the team run that delegated to the member.
    parent_run_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    run_type = models.CharField(max_length=16)  # "team" or "agent"
    component_id = models.CharField(max_length=64, blank=True, default="")  # team_id or agent_id
    status = models.CharField(max_length=16, db_index=True)
    run_index = models.IntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict, encoder=PayloadEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ChatRunQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["session", "parent_run_id", "id"], name="chat_run_history")]

    def __str__(self) -> str:
        return self.run_id


# Sent (with `user_id`, `session_id`, `session_name`, `named_by`) once a session's new name is
# committed: its user renamed it, or the model named it (chat.runs.naming). The websocket
# transport tells every socket of the user (chat.ws.notices), in every process, so each open chat
# list shows the new name at once. Async senders use `asend`.
session_renamed = Signal()
