"""What the leader is told about the user it answers, built for each run: who they are, their local
date and time, their own instructions, and a note when they cancelled the previous answer.

The user's words go in a section of their own (`user_section`, agno's `additional_context`: the
end of the system prompt, after Cirkelline's instructions and rules), marked as the user's
preferences, so they can shape answers but never take the place of the rules above them.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chat.context import UserProfile


@dataclass(frozen=True)
class ForUser:
    """Whom a run's team answers: their profile, name, and the state of the conversation."""

    profile: UserProfile = field(default_factory=UserProfile)
    username: str = ""
    previous_run_cancelled: bool = False


CANCELLED_NOTE = (
    "The user cancelled your previous response in this conversation before it was finished: they may not have "
    "read it, and it is not in the history above. Do not assume they saw it."
)

PREFERENCES_INTRO = (
    "The user wrote the following preferences for how you should answer them. Follow them where they do not "
    "conflict with your instructions and rules above; where they do, the rules above win."
)

# The tag the user's text is wrapped in; written inside the text, it is neutralised so it cannot
# close the section early.
_TAG = "user_preferences"


def _now() -> datetime:
    return datetime.now(UTC)


def local_time(timezone_name: str, now: datetime) -> str:
    """`now` in the user's timezone, as a person would read it: 'Tuesday 1 December 2026, 14:05 (Europe/...)'."""
    try:
        zone = zoneinfo.ZoneInfo(timezone_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # a zone the server no longer knows
        zone, timezone_name = zoneinfo.ZoneInfo("UTC"), "UTC"
    local = now.astimezone(zone)
    offset = local.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset not in ("+0000", "") else "UTC"
    return f"{local:%A} {local.day} {local:%B %Y}, {local:%H:%M} ({timezone_name}, {offset})"


def _neutralised(text: str) -> str:
    return text.replace(f"</{_TAG}", f"&lt;/{_TAG}").replace(f"<{_TAG}", f"&lt;{_TAG}")


def user_section(profile: UserProfile, username: str, now: datetime | None = None) -> str:
    """The end of the leader's system prompt for one run: the user's name, their local date and
    time, and their custom instructions (if any) marked as their preferences."""
    now = now or _now()
    name = profile.display_name or username
    lines = [
        "About the user you are talking to:",
        f"- Their name: {name}" if name else "- Their name: not given",
        f"- Their local date and time: {local_time(profile.timezone, now)}",
    ]
    if profile.custom_instructions:
        lines += ["", PREFERENCES_INTRO, f"<{_TAG}>", _neutralised(profile.custom_instructions), f"</{_TAG}>"]
    return "\n".join(lines)


def run_notes(*, previous_run_cancelled: bool) -> list[str]:
    """Instructions about this run's situation, added after the leader's own."""
    return [CANCELLED_NOTE] if previous_run_cancelled else []
