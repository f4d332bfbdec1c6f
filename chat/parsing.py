"""Turning an HTTP run request (form-urlencoded, multipart or JSON) into a RunRequest.

Everything a client sends is checked here; a bad request becomes a `BadRequest` with the
status and a sentence saying what is wrong. Nothing is written before this passes.
"""

from __future__ import annotations

import json
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


class _RepeatedKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """An object whose keys are all different: with a repeated key, json.loads keeps the last
    value silently, so `{"user_id": 2, "user_id": 1}` would mean what a proxy checking the first
    one did not see."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return value


def _name(key: str) -> str:
    """A client-chosen field name, quoted and cut short, for an error message."""
    return repr(key[:64])


def _too_deep(what: str) -> BadRequest:
    limit = settings.CIRKELLINE_MAX_JSON_DEPTH
    return BadRequest(400, f"{what} is nested too deeply: the limit is {limit} levels of objects and arrays.")


def load_json(raw: str | bytes, what: str, *, invalid: str | None = None, envelope: bool = False) -> Any:
    """Strict JSON: the value, or a 400 saying what is wrong.

    Refused: what is not JSON (`invalid`, if given, is that message), NaN/Infinity, a key repeated
    in one object, text no database can store (see `check_text`), and nesting deeper than
    CIRKELLINE_MAX_JSON_DEPTH (agno serialises and copies these values recursively, so a deep one
    fails the run after it was billed). An `envelope` is a request body: the limit applies to each
    of its fields, and the error names the field.
    """
    try:
        value = json.loads(raw, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise _too_deep(what) from None
    except _RepeatedKey as exc:
        raise BadRequest(400, f"{what} repeats the key {_name(exc.key)}: send each key once.") from None
    except ValueError:
        raise BadRequest(400, invalid or f"{what} is not valid JSON.") from None
    limit = settings.CIRKELLINE_MAX_JSON_DEPTH
    if envelope and isinstance(value, dict):
        for key, item in value.items():
            check_text(what, key)
            check_text(_name(key), item, max_depth=limit)
    else:
        check_text(what, value, max_depth=limit + 1 if envelope else limit)
    return value


def check_text(what: str, value: Any, *, max_depth: int | None = None) -> None:
    """400 if a string anywhere in `value` holds what cannot be stored or sent: a NUL character
    (no database keeps it) or a lone UTF-16 surrogate (JSON's `"\\ud800"` decodes to one; it has
    no UTF-8 form, so neither the database nor the event stream could encode it); or if objects
    and arrays nest more than `max_depth` levels. Walked with a stack, not recursion, so no input
    can exhaust the interpreter's recursion limit here."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise BadRequest(400, f"{what} contains a NUL character.")
            if has_lone_surrogate(item):
                raise BadRequest(400, f"{what} contains an unpaired surrogate (not valid Unicode).")
        elif isinstance(item, (dict, list)):
            depth += 1
            if max_depth is not None and depth > max_depth:
                raise _too_deep(what)
            if isinstance(item, dict):
                for key, child in item.items():
                    stack.append((key, depth))
                    stack.append((child, depth))
            else:
                stack.extend((child, depth) for child in item)


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
            raise BadRequest(400, f"The field {_name(key)} was sent {len(values)} times: send it once.")
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
