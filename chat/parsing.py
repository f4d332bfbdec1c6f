"""Turning an HTTP run request (form-urlencoded, multipart or JSON) into a RunRequest.

Everything a client sends is checked here; a bad request becomes a `BadRequest` with the
status and a sentence saying what is wrong. Nothing is written before this passes.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from .auth import Caller
from .models import SESSION_ID_RE, has_lone_surrogate
from .runner import Attachment, RunRequest

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


class BadRequest(Exception):
    def __init__(self, status: int, detail: str, **extra: Any):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(raw: str | bytes, what: str) -> Any:
    """Strict JSON (no NaN/Infinity, no NUL characters in any string): the value or a 400."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
        check_text(what, value)
    except (ValueError, RecursionError):
        raise BadRequest(400, f"{what} is not valid JSON.") from None
    return value


def check_text(what: str, value: Any) -> None:
    """400 if a string anywhere in `value` holds what cannot be stored or sent: a NUL character
    (no database keeps it) or a lone UTF-16 surrogate (JSON's `"\\ud800"` decodes to one; it has
    no UTF-8 form, so neither the database nor the event stream could encode it)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest(400, f"{what} contains a NUL character.")
        if has_lone_surrogate(value):
            raise BadRequest(400, f"{what} contains an unpaired surrogate (not valid Unicode).")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(what, key)
            check_text(what, item)
    elif isinstance(value, list):
        for item in value:
            check_text(what, item)


def json_body(request: HttpRequest, empty: bytes = b"null") -> dict:
    """A JSON request body that must be an object (an empty body reads as `empty`)."""
    data = load_json(request.body or empty, "The request body")
    if not isinstance(data, dict):
        raise BadRequest(400, "The JSON body must be an object.")
    return data


def form_fields(request: HttpRequest) -> dict:
    """A form-urlencoded or multipart body's fields (last value of each)."""
    fields = {key: request.POST.get(key) for key in request.POST}
    check_text("The form", fields)
    return fields


def _json_object(name: str, value: Any) -> dict | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = load_json(value, f"'{name}'")
        except BadRequest as exc:
            raise BadRequest(400, f"'{name}' must be a JSON object; {exc.detail}") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(400, f"'{name}' must be a JSON object.")
    return value


def validate_session_id(value: str) -> str:
    if not isinstance(value, str) or not SESSION_ID_RE.match(value):
        raise BadRequest(400, "Invalid session id: use 1-64 letters, digits, '-', '_', '.' or ':'.")
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
        if upload.size > settings.CIRKELLINE_MAX_FILE_BYTES:
            raise BadRequest(
                413, f"File {upload.name!r} is too large: the limit is {settings.CIRKELLINE_MAX_FILE_BYTES} bytes."
            )
        kind, mime = _media_kind(upload)
        attachments.append(Attachment(kind=kind, name=upload.name or "upload", mime_type=mime, content=upload.read()))
    return attachments


def _fields(request: HttpRequest) -> tuple[dict, list[Attachment]]:
    try:
        return _read_fields(request)
    except RequestDataTooBig:
        raise BadRequest(413, f"The request body is too large: the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} "
                              "bytes.") from None
    except TooManyFieldsSent:
        raise BadRequest(400, "The request has too many fields.") from None


def _read_fields(request: HttpRequest) -> tuple[dict, list[Attachment]]:
    content_type = (request.content_type or "").lower()
    if content_type == "application/json":
        return json_body(request), []
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        try:
            return form_fields(request), _attachments(request) if content_type == "multipart/form-data" else []
        except MultiPartParserError:
            raise BadRequest(400, "The multipart body is malformed.") from None
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
