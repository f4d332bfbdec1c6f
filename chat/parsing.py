"""Turning an HTTP run request (form-urlencoded, multipart or JSON) into a RunRequest.

Everything a client sends is checked here; a bad request becomes a `BadRequest` with the
status and a sentence saying what is wrong. Nothing is written before this passes.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest as DjangoBadRequest
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from .auth import Caller
from .errors import BadRequest
from .models import validate_session_id
from .payload import check_text, load_json, quoted_name
from .runs.request import Attachment, RunRequest

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off", ""})

MEDIA_TYPES: dict[str, frozenset[str]] = {
    "image": frozenset({"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp", "image/bmp",
                        "image/tiff", "image/heic", "image/heif", "image/avif"}),
    "audio": frozenset({"audio/wav", "audio/wave", "audio/x-wav", "audio/mpeg", "audio/mp3", "audio/ogg",
                        "audio/mp4", "audio/m4a", "audio/x-m4a", "audio/aac", "audio/flac", "audio/webm"}),
    "video": frozenset({"video/mp4", "video/webm", "video/quicktime", "video/mpeg", "video/x-flv", "video/3gpp",
                        "video/wmv"}),
    "document": frozenset({"application/pdf", "application/json", "text/plain", "text/markdown", "text/csv",
                           "text/html", "text/xml", "application/xml", "text/rtf",
                           "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                           "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                           "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                           "application/msword", "application/vnd.ms-excel"}),
}
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
# Fields AgentOS accepts that Cirkelline deliberately ignores (they would let a client change
# how the server runs the team).
IGNORED_FIELDS = frozenset({"monitor", "version", "retries", "knowledge_filters", "add_history_to_context",
                            "add_dependencies_to_context", "add_session_state_to_context", "files_metadata",
                            "factory_input", "stream"})


def _bool(name: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE:
        return True
    if isinstance(value, str) and value.strip().lower() in FALSE:
        return default if value.strip() == "" else False
    raise BadRequest(400, f"'{name}' must be true or false.")


@contextmanager
def _reading_body() -> Iterator[None]:
    """Django's own refusals while reading a body, as the API's 400/413."""
    try:
        yield
    except RequestDataTooBig:
        raise BadRequest(413, f"The request body is too large: the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} "
                              "bytes.") from None
    except TooManyFieldsSent:
        raise BadRequest(400, "The request has too many fields.") from None
    except MultiPartParserError:
        raise BadRequest(400, "The multipart body is malformed (is its boundary missing?).") from None
    except DjangoBadRequest as exc:  # e.g. a form declaring a charset other than UTF-8
        raise BadRequest(400, str(exc) or "The request body is malformed.") from None


def json_body(request: HttpRequest, empty: bytes = b"null") -> dict:
    """A JSON request body that must be an object (an empty body reads as `empty`)."""
    with _reading_body():
        raw = request.body or empty
    data = load_json(raw, "The request body", envelope=True)
    if not isinstance(data, dict):
        raise BadRequest(400, "The JSON body must be an object.")
    return data


# Form fields that may be sent several times; any other field sent twice is refused, since Django
# would silently keep the last value (`user_id=2&user_id=1`).
REPEATABLE_FIELDS = frozenset({"files"})


def form_fields(request: HttpRequest) -> dict:
    """A form-urlencoded or multipart body's fields, each sent once."""
    with _reading_body():
        post = request.POST
    fields = {}
    for key, values in post.lists():
        if len(values) > 1 and key not in REPEATABLE_FIELDS:
            raise BadRequest(400, f"The field {quoted_name(key)} was sent {len(values)} times: send it once.")
        fields[key] = values[-1]
    check_text("The form", fields)
    return fields


def _json_object(name: str, value: Any) -> dict | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = load_json(value, f"'{name}'", invalid=f"'{name}' must be a JSON object; it is not valid JSON.")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(400, f"'{name}' must be a JSON object.")
    return value


def _media_kind(upload) -> tuple[str, str]:
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if content_type in _GENERIC_TYPES:
        guessed, _ = mimetypes.guess_type(upload.name or "")
        content_type = (guessed or "").lower()
    for kind, types in MEDIA_TYPES.items():
        if content_type in types:
            return kind, content_type
    raise BadRequest(
        415,
        f"Unsupported file type {content_type or 'unknown'!r} for {upload.name!r}: send images, audio, video "
        "or documents (PDF, text, Office).",
    )


def _attachments(request: HttpRequest) -> list[Attachment]:
    uploads = request.FILES.getlist("files") if request.FILES else []
    if len(uploads) > settings.CIRKELLINE_MAX_FILES:
        raise BadRequest(413, f"Too many files: at most {settings.CIRKELLINE_MAX_FILES} per message.")
    attachments = []
    for upload in uploads:
        if not upload.size:  # agno refuses empty content, after the run has started
            raise BadRequest(400, f"File {upload.name!r} is empty: attach a file with content.")
        if upload.size > settings.CIRKELLINE_MAX_FILE_BYTES:
            raise BadRequest(
                413, f"File {upload.name!r} is too large: the limit is {settings.CIRKELLINE_MAX_FILE_BYTES} bytes."
            )
        kind, mime = _media_kind(upload)
        attachments.append(Attachment(kind=kind, name=upload.name or "upload", mime_type=mime, content=upload.read()))
    return attachments


def _fields(request: HttpRequest) -> tuple[dict, list[Attachment]]:
    content_type = (request.content_type or "").lower()
    if content_type == "application/json":
        return json_body(request), []
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        fields = form_fields(request)
        with _reading_body():
            return fields, _attachments(request) if content_type == "multipart/form-data" else []
    raise BadRequest(415, f"Unsupported content type {content_type!r}: send JSON, form-urlencoded or multipart.")


def uploaded_files(request: HttpRequest) -> list[Attachment]:
    """A multipart request's `files`, checked like a run's (the chat page uploads them before its run)."""
    return _fields(request)[1]


def parse_run_request(request: HttpRequest, caller: Caller, team_id: str) -> tuple[RunRequest, bool]:
    """The validated run request and whether the client wants a stream."""
    data, attachments = _fields(request)
    return run_request_from_fields(data, caller, team_id, attachments)


def run_request_from_fields(data: dict, caller: Caller, team_id: str,
                            attachments: list[Attachment]) -> tuple[RunRequest, bool]:
    """The same checks for fields already decoded by any transport (HTTP body, websocket frame)."""
    message = data.get("message")
    if not isinstance(message, str) or not message.strip():
        raise BadRequest(400, "'message' is required and must be a non-empty string.")
    if len(message) > settings.CIRKELLINE_MAX_MESSAGE_CHARS:
        limit = settings.CIRKELLINE_MAX_MESSAGE_CHARS
        raise BadRequest(413, f"'message' is too long: the limit is {limit} characters.")

    user_id = data.get("user_id")
    if user_id not in (None, "") and str(user_id) not in (str(caller.pk), caller.username):
        raise BadRequest(403, "'user_id' must be your own: the run always belongs to the authenticated user.")

    session_id = data.get("session_id")
    if session_id in (None, ""):
        session_id = None
    elif not isinstance(session_id, str):
        raise BadRequest(400, "'session_id' must be a string.")
    else:
        validate_session_id(session_id)

    if _bool("background", data.get("background"), False):
        raise BadRequest(400, "Background runs are not supported: stream the run or wait for its result.")

    stream = _bool("stream", data.get("stream"), True)
    run = RunRequest(
        user_id=caller.pk,
        team_id=team_id,
        message=message,
        session_id=session_id,
        deep_research=_bool("deep_research", data.get("deep_research"), False),
        session_state=_json_object("session_state", data.get("session_state")),
        dependencies=_json_object("dependencies", data.get("dependencies")),
        metadata=_json_object("metadata", data.get("metadata")),
        attachments=attachments,
        stream_events=_bool("stream_events", data.get("stream_events"), True),
        streamed=stream,
    )
    return run, stream
