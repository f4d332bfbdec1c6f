"""Page views: the chat for a logged-in user (everyone else goes to the login page).

The page itself is static HTML plus a JSON configuration (no inline script, see the CSP in
settings); the browser then talks to the HTTP API (sessions, uploads) with the login cookie and
to the websocket (`/ws/chat/`) for runs. Pages are plain sync views: they are not on the run path.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from chat.agents.team import CIRKELLINE_TEAM_ID
from chat.identity.forms import ThrottledLoginForm
from chat.models import SESSION_ID_RE
from chat.personal.models import DISPLAY_NAME_MAX, timezones
from chat.runs.request import MEDIA_TYPES
from chat.runs.teams import describe_team_detail

# GET and POST only: Django's form views also take PUT as a POST.
login = auth_views.LoginView.as_view(template_name="chat/login.html", authentication_form=ThrottledLoginForm,
                                     redirect_authenticated_user=True,
                                     http_method_names=["get", "post", "head", "options"])


def _page_config(request: HttpRequest) -> dict:
    team = describe_team_detail(CIRKELLINE_TEAM_ID)
    return {
        "user": request.user.get_username(),
        "teamId": CIRKELLINE_TEAM_ID,
        "teamName": team["name"],
        "members": {member["id"]: member["name"] for member in team["members"]},
        "wsPath": "/ws/chat/",
        "limits": {
            "maxFiles": settings.CIRKELLINE_MAX_FILES,
            "maxFileBytes": settings.CIRKELLINE_MAX_FILE_BYTES,
            "maxMessageChars": settings.CIRKELLINE_MAX_MESSAGE_CHARS,
            "displayNameChars": DISPLAY_NAME_MAX,
            "customInstructionsChars": settings.CIRKELLINE_CUSTOM_INSTRUCTIONS_MAX,
        },
        "timezones": sorted(timezones()),
        "mediaTypes": {kind: sorted(types) for kind, types in MEDIA_TYPES.items()},
    }


@require_safe
@login_required
def chat(request: HttpRequest, session_id: str | None = None) -> HttpResponse:
    """`/` (a new chat) and `/c/<session id>` (a chat of yours; the page loads it from the API)."""
    if session_id is not None and not SESSION_ID_RE.match(session_id):
        return redirect("chat")
    accept = ",".join(sorted({t for types in MEDIA_TYPES.values() for t in types}))
    return render(request, "chat/chat.html", {"config": _page_config(request), "accept": accept})


@require_safe
def api_docs(request: HttpRequest) -> HttpResponse:
    """`/docs`: the OpenAPI document (`/openapi.json`) in Swagger UI, and the websocket protocol.

    Open to anyone, like `/openapi.json`: the contract is no secret, and "Try it out" calls carry
    the caller's own credentials. Swagger UI is vendored (chat/vendor/swagger-ui, no CDN) and
    started by chat/js/docs.js, so the site's Content-Security-Policy applies unchanged: scripts
    and styles from this site only, no inline script; `img-src data:` (already allowed) covers
    the icons in its CSS. tests/web/browser/test_docs.py checks the page renders with no CSP
    violation and no request leaving the server.
    """
    return render(request, "chat/docs.html", {"openapi_url": "/openapi.json"})
