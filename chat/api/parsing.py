"""Reading an HTTP request's body (form-urlencoded, multipart or JSON) into fields and files.

Everything a client sends is checked here or in the run request's own checks
(chat.runs.request.run_request_from_fields, shared with the websocket); a bad request becomes a
`BadRequest` with the status and a sentence saying what is wrong. Nothing is written before this
passes.

The body's size was checked against its route's limit before it was read (chat.api.limits); a
body larger than CIRKELLINE_PARSE_OFF_LOOP_BYTES is parsed in a worker thread
(chat.payload.parse), so no client can hold the event loop with one.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import BadRequest as DjangoBadRequest
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from chat.errors import BadRequest
from chat.identity import Caller
from chat.payload import check_text, load_json, parse, quoted_name
from chat.runs.request import MEDIA_TYPES, Attachment, RunRequest, run_request_from_fields

_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


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


def _size(request: HttpRequest) -> int:
    """The body's length as declared (Django's handler has the whole body by now); unknown: large."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 1 << 62


async def json_body(request: HttpRequest, empty: bytes = b"null") -> dict:
    """A JSON request body that must be an object (an empty body reads as `empty`)."""
    return await parse(_size(request), _json_body, request, empty)


async def form_fields(request: HttpRequest) -> dict:
    """A form-urlencoded or multipart body's fields, each sent once."""
    return await parse(_size(request), _form_fields, request)


async def body_fields(request: HttpRequest) -> dict:
    """A JSON object body, or a form's fields (an empty JSON body is `{}`)."""
    if (request.content_type or "").lower() == "application/json":
        return await json_body(request, empty=b"{}")
    return await form_fields(request)


def _json_body(request: HttpRequest, empty: bytes) -> dict:
    with _reading_body():
        raw = request.body or empty
    data = load_json(raw, "The request body", envelope=True)
    if not isinstance(data, dict):
        raise BadRequest(400, "The JSON body must be an object.")
    return data


# An integer as text, as the document's `integer` parameters allow it: ASCII digits, an optional minus.
# Python's int() takes more (" 1", "1_0", "+1", other scripts' digits): those are a 400 too.
_INTEGER = re.compile(r"-?[0-9]+")


def integer(value: object, name: str, default: int, *, lo: int, hi: int) -> int:
    """A query parameter's or a JSON field's integer between `lo` and `hi`: `default` when absent (None),
    else a JSON integer or its digits as text; anything else (an empty string too) is a 400 naming it."""
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 2.0 is an integer in JSON Schema
    if isinstance(value, bool) or not (isinstance(value, int) or isinstance(value, str) and _INTEGER.fullmatch(value)):
        raise BadRequest(400, f"'{name}' must be an integer.")
    try:
        number = int(value)
    except ValueError:  # more digits than int() reads (sys.get_int_max_str_digits)
        number = hi + 1
    if not lo <= number <= hi:
        raise BadRequest(400, f"'{name}' must be between {lo} and {hi}.")
    return number


# An event index a client last received: -1 (none yet) or up to 15 digits (JSON-safe; an index never
# gets near it), as the document says; empty or absent: not given (AgentOS' form reads "" as absent).
_EVENT_INDEX = re.compile(r"-1|[0-9]{1,15}")
EVENT_INDEX_MAX = 10**15 - 1


def event_index(value: object, what: str) -> int | None:
    """An event index a client last received (-1: none yet); None when not given."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and _EVENT_INDEX.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and -1 <= value <= EVENT_INDEX_MAX:
        return value
    raise BadRequest(400, f"{what} must be -1 or an integer from 0 to {EVENT_INDEX_MAX}.")


# Form fields that may be sent several times; any other field sent twice is refused, since Django
# would silently keep the last value (`user_id=2&user_id=1`).
REPEATABLE_FIELDS = frozenset({"files"})


def _form_fields(request: HttpRequest) -> dict:
    with _reading_body():
        post = request.POST
    fields = {}
    for key, values in post.lists():
        if len(values) > 1 and key not in REPEATABLE_FIELDS:
            raise BadRequest(400, f"The field {quoted_name(key)} was sent {len(values)} times: send it once.")
        fields[key] = values[-1]
    check_text("The form", fields)
    return fields


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
        return _json_body(request, b"null"), []
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        fields = _form_fields(request)
        if "files" in fields:  # a text field, not a file part: the run would go ahead without them
            raise BadRequest(400, "'files' must be sent as files: multipart parts with a filename.")
        with _reading_body():
            return fields, _attachments(request) if content_type == "multipart/form-data" else []
    raise BadRequest(415, f"Unsupported content type {content_type!r}: send JSON, form-urlencoded or multipart.")


async def uploaded_files(request: HttpRequest) -> list[Attachment]:
    """A multipart request's `files`, checked like a run's (the chat page uploads them before its run).
    Nothing else is taken: any other field or part is a 400, not silently dropped."""
    fields, attachments = await parse(_size(request), _fields, request)
    unknown = sorted((set(fields) | set(request.FILES or ())) - {"files"})
    if unknown:
        raise BadRequest(400, f"Unknown field {quoted_name(unknown[0])}: send only files, as multipart parts 'files'.")
    return attachments


async def parse_run_request(request: HttpRequest, caller: Caller, team_id: str) -> tuple[RunRequest, bool]:
    """The validated run request and whether the client wants a stream (the form's JSON fields
    are parsed by the run request's checks: off the loop too, for a large body)."""
    return await parse(_size(request), _run_request, request, caller, team_id)


def _run_request(request: HttpRequest, caller: Caller, team_id: str) -> tuple[RunRequest, bool]:
    data, attachments = _fields(request)
    return run_request_from_fields(data, user_pk=caller.pk, username=caller.username, team_id=team_id,
                                   attachments=attachments)
