"""`GET /profile` and `PATCH /profile`: the caller's own profile (display name, timezone, custom
instructions, memories on or off). There is no route to anyone else's: the user is the caller.

PATCH takes a JSON object with any of the fields and changes only those (chat.personal.models.
clean_changes checks them: an IANA timezone, bounded text, a boolean switch); the profile row is
created by the first change. Both answer with the whole profile.
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest, HttpResponse, JsonResponse

from chat.errors import BadRequest
from chat.identity import Caller
from chat.personal.models import Profile, clean_changes
from chat.storage.executor import run_db

from .errors import api
from .parsing import json_body


def profile_json(profile: dict) -> dict:
    updated: datetime | None = profile["updated_at"]
    return {**profile, "updated_at": updated.isoformat().replace("+00:00", "Z") if updated else None}


@api(("GET", "PATCH"))
async def profile(request: HttpRequest, caller: Caller) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse(profile_json(await run_db(Profile.objects.of, caller.pk)))
    if (request.content_type or "").lower() != "application/json":
        raise BadRequest(415, "Send the profile changes as a JSON object (Content-Type: application/json).")
    changes = clean_changes(await json_body(request))
    return JsonResponse(profile_json(await run_db(Profile.objects.change, caller.pk, changes)))
