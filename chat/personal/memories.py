"""What Cirkelline remembers about a user: `UserMemory` rows (a sentence, its topics, owner and
timestamps) and their queries, every one scoped to one owner in its SQL.

Topics are kept twice on purpose: as the memory's `topics` list (what is shown, in order) and as
`MemoryTopic` rows (one per memory and topic), which filter and list topics on SQLite and
PostgreSQL alike (a JSON list cannot be searched by element on both). Both are written together.
Memories are written by the user (the API, the chat page) and by the team's memory manager
(chat.storage.agno_db, in agno's shape: `record`).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils.timezone import now

from chat.errors import BadRequest, CirkellineError
from chat.payload import check_text
from chat.records import epoch

MEMORY_MAX = 5000  # characters of one memory (AgentOS' limit)
TOPIC_MAX = 64  # characters of one topic
TOPICS_MAX = 20  # topics of one memory
INPUT_MAX = 2000  # characters kept of what a memory was made from
# Orders the list of memories takes (`sort_by`), by column.
SORT_FIELDS = {"updated_at": "updated_at", "created_at": "created_at", "memory": "memory"}


class MemoriesFull(CirkellineError):
    """The user keeps CIRKELLINE_MEMORIES_MAX memories already: one must go before another comes."""

    status = 409

    def __init__(self) -> None:
        super().__init__(detail=f"You have {settings.CIRKELLINE_MEMORIES_MAX} memories, the most Cirkelline keeps: "
                                "delete some before adding more.")


def new_memory_id() -> str:
    return str(uuid.uuid4())


def normal_topics(topics: Any, *, strict: bool) -> list[str]:
    """Topics as stored: stripped, lower case, each once, in order. `strict` (what a person sent):
    a BadRequest for a topic that is not a non-empty string of at most TOPIC_MAX characters, or
    more than TOPICS_MAX of them; otherwise (what a model sent) such topics are dropped or cut."""
    if topics is None:
        return []
    if not isinstance(topics, list):
        if strict:
            raise BadRequest(400, "'topics' must be a list of strings.")
        return []
    result: list[str] = []
    for topic in topics:
        if not isinstance(topic, str) or not topic.strip():
            if strict:
                raise BadRequest(400, "Each topic must be a non-empty string.")
            continue
        if strict:
            check_text("A topic", topic)
            if len(topic) > TOPIC_MAX:
                raise BadRequest(400, f"A topic may have at most {TOPIC_MAX} characters.")
            if any(ord(ch) < 32 for ch in topic):
                raise BadRequest(400, "A topic may not contain control characters.")
        name = " ".join(topic.split()).lower()[:TOPIC_MAX]
        if name not in result:
            result.append(name)
    if len(result) > TOPICS_MAX:
        if strict:
            raise BadRequest(400, f"A memory may have at most {TOPICS_MAX} topics.")
        result = result[:TOPICS_MAX]
    return result


def clean_memory_text(value: Any) -> str:
    """A memory's text as a person sent it, checked: 1-5000 characters, new lines and tabs allowed."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(400, "'memory' is required: a non-empty string.")
    check_text("'memory'", value)
    if len(value) > MEMORY_MAX:
        raise BadRequest(413, f"'memory' is too long: the limit is {MEMORY_MAX} characters.")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise BadRequest(400, "'memory' contains control characters (other than new lines and tabs).")
    return value.strip()


def record(row: dict) -> dict:
    """A memory as agno's storage returns one (`UserMemory.from_dict` reads it): times in epoch seconds."""
    return {
        "memory_id": row["memory_id"], "memory": row["memory"], "topics": list(row["topics"] or []),
        "input": row["input"] or None, "user_id": str(row["user_id"]), "agent_id": row["agent_id"] or None,
        "team_id": row["team_id"] or None, "feedback": None,
        "created_at": epoch(row["created_at"]), "updated_at": epoch(row["updated_at"]),
    }


_COLUMNS = ("memory_id", "memory", "topics", "input", "user_id", "agent_id", "team_id", "created_at", "updated_at")


class UserMemoryQuerySet(models.QuerySet):
    """Every query names its owner: no method reads or writes anyone else's memories.

    Sync (the ORM); from async code through chat.storage.executor.run_db.
    """

    def owned_by(self, user_pk: int) -> UserMemoryQuerySet:
        return self.filter(user_id=user_pk)

    def _matching(self, user_pk: int, *, topics: list[str] | None = None, any_topic: bool = False,
                  search: str | None = None, agent_id: str | None = None,
                  team_id: str | None = None) -> UserMemoryQuerySet:
        qs = self.owned_by(user_pk)
        names = normal_topics(topics, strict=False)
        if names and any_topic:
            qs = qs.filter(Exists(MemoryTopic.objects.filter(memory=OuterRef("pk"), name__in=names)))
        else:  # every topic (agno's own adapters filter so)
            for name in names:
                qs = qs.filter(Exists(MemoryTopic.objects.filter(memory=OuterRef("pk"), name=name)))
        if search:
            qs = qs.filter(memory__icontains=search)
        if agent_id:
            qs = qs.filter(agent_id=agent_id)
        if team_id:
            qs = qs.filter(team_id=team_id)
        return qs

    def page(self, user_pk: int, *, topics: list[str] | None = None, search: str | None = None,
             agent_id: str | None = None, team_id: str | None = None, limit: int | None = 20, page: int = 1,
             sort_by: str | None = None, sort_order: str | None = None) -> tuple[list[dict], int]:
        """One page of the user's memories with every one of `topics` and containing `search`
        (case-insensitive), newest change first by default, and how many match in all. `limit`
        None: all of them."""
        qs = self._matching(user_pk, topics=topics, search=search, agent_id=agent_id, team_id=team_id)
        field = SORT_FIELDS.get(sort_by or "updated_at", "updated_at")
        ascending = (sort_order or "desc").lower() == "asc"
        rows = qs.order_by(*((field, "id") if ascending else (f"-{field}", "-id"))).values(*_COLUMNS)
        total = qs.count()
        if limit is not None:
            offset = (max(page, 1) - 1) * limit
            rows = rows[offset : offset + limit]
        return [record(row) for row in rows], total

    def search(self, user_pk: int, *, topics: list[str] | None = None, text: str | None = None,
               limit: int = 20) -> list[dict]:
        """The user's memories with any of `topics` or containing `text` (the team's search tool)."""
        qs = self.owned_by(user_pk)
        names = normal_topics(topics, strict=False)
        found = Q()
        if names:
            found |= Q(Exists(MemoryTopic.objects.filter(memory=OuterRef("pk"), name__in=names)))
        if text and text.strip():
            found |= Q(memory__icontains=text.strip())
        if names or (text and text.strip()):
            qs = qs.filter(found)
        return [record(row) for row in qs.order_by("-updated_at", "-id").values(*_COLUMNS)[:limit]]

    def one(self, user_pk: int, memory_id: str) -> dict | None:
        row = self.owned_by(user_pk).filter(memory_id=memory_id).values(*_COLUMNS).first()
        return record(row) if row else None

    def save_for(self, user_pk: int, *, memory: str, memory_id: str | None = None, topics: Any = None,
                 input: str | None = None, agent_id: str | None = None, team_id: str | None = None,
                 create: bool = True, strict_topics: bool = False) -> dict | None:
        """Create or replace the user's memory `memory_id` (a new id if None): its text and topics.

        None when `memory_id` is someone else's (never touched), or is not the user's and
        `create` is False. MemoriesFull when a new memory would pass CIRKELLINE_MEMORIES_MAX.
        """
        names = normal_topics(topics, strict=strict_topics)
        memory_id = memory_id or new_memory_id()
        fields = {"memory": memory, "topics": names, "updated_at": now()}
        if input is not None:
            fields["input"] = input[:INPUT_MAX]
        try:
            with transaction.atomic():
                row = self.select_for_update().owned_by(user_pk).filter(memory_id=memory_id).first()
                if row is None:
                    if not create:
                        return None
                    if self.owned_by(user_pk).count() >= settings.CIRKELLINE_MEMORIES_MAX:
                        raise MemoriesFull()
                    row = self.create(memory_id=memory_id, user_id=user_pk, agent_id=agent_id or "",
                                      team_id=team_id or "", **fields)
                else:
                    for name, value in fields.items():
                        setattr(row, name, value)
                    row.save(update_fields=list(fields))
                    MemoryTopic.objects.filter(memory=row).delete()
                MemoryTopic.objects.bulk_create(MemoryTopic(memory=row, user_id=user_pk, name=n) for n in names)
        except IntegrityError:  # the id is taken: another user's memory (the unique index says so)
            return None
        return self.one(user_pk, memory_id)

    def remove(self, user_pk: int, memory_ids: list[str]) -> int:
        """Delete those of `memory_ids` that are the user's; how many."""
        return self.owned_by(user_pk).filter(memory_id__in=memory_ids).delete()[1].get(UserMemory._meta.label, 0)

    def clear(self, user_pk: int) -> int:
        """Delete every memory of the user's; how many."""
        return self.owned_by(user_pk).delete()[1].get(UserMemory._meta.label, 0)

    def topics_of(self, user_pk: int) -> list[str]:
        """Every topic of the user's memories, in alphabetical order."""
        return list(MemoryTopic.objects.filter(user_id=user_pk).order_by("name").values_list("name", flat=True)
                    .distinct())

    def stats(self, user_pk: int) -> dict | None:
        """The user's count of memories and when the last changed (None without memories)."""
        row = self.owned_by(user_pk).aggregate(total=models.Count("id"), last=Max("updated_at"))
        if not row["total"]:
            return None
        return {"user_id": str(user_pk), "total_memories": row["total"], "last_memory_updated_at": row["last"]}


class UserMemory(models.Model):
    memory_id = models.CharField(max_length=64, unique=True, default=new_memory_id)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cirkelline_memories")
    memory = models.TextField()
    topics = models.JSONField(default=list)
    # What the memory was made from (the memory manager's task), as agno keeps it.
    input = models.TextField(blank=True, default="")
    agent_id = models.CharField(max_length=64, blank=True, default="")
    team_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = UserMemoryQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["user", "-updated_at"], name="personal_memory_user_recent")]

    def __str__(self) -> str:
        return self.memory_id


class MemoryTopic(models.Model):
    """One topic of one memory (the index the topic filters and the topic list use)."""

    memory = models.ForeignKey(UserMemory, on_delete=models.CASCADE, related_name="topic_rows")
    # The memory's owner again, so a user's topics are listed without a join.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=TOPIC_MAX)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["memory", "name"], name="personal_one_topic_per_memory")]
        indexes = [models.Index(fields=["user", "name"], name="personal_topic_user_name")]

    def __str__(self) -> str:
        return self.name
