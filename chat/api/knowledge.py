"""AgentOS' knowledge routes, same shapes, over the caller's documents and the shared ones:

    POST   /knowledge/content                 multipart `file` (or `text_content`), `name`?, `description`?,
                                              `metadata`? (a JSON object), Cirkelline's `shared`? (staff) -> 202
    GET    /knowledge/content                 a page of the documents you may read: ?limit=&page=&sort_by=&sort_order=
    GET    /knowledge/content/{id}            one
    PATCH  /knowledge/content/{id}            `name`?, `description`?, `metadata`? (form, as AgentOS; or JSON),
                                              Cirkelline's `shared`? (staff) -> the document
    GET    /knowledge/content/{id}/status     {"id", "status", "status_message"}
    DELETE /knowledge/content/{id}            with its chunks -> {"id"}
    GET    /knowledge/search?query=&max_results=&limit=&page=   (and POST with AgentOS' JSON body)

Another user's private document is a 404, like an unknown id; a shared document someone else
uploaded may be read by all and deleted by staff only (403, as AgentOS says for shared content).
AgentOS' reader and chunker fields (`reader_id`, `chunker`, `chunk_size`, `chunk_overlap`) and
its `db_id` / `knowledge_id` are accepted and ignored: there is one reader per type and one
knowledge base. `url` is refused: Cirkelline does not fetch pages for you.
"""

from __future__ import annotations

import io
import json
import re
import time
from datetime import UTC

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.http.multipartparser import MultiPartParserError

from chat.errors import BadRequest, NotFound
from chat.identity import Caller
from chat.knowledge.models import KnowledgeDocument
from chat.knowledge.search import Hit
from chat.payload import check_text
from chat.runs import knowledge
from chat.storage.executor import run_db

from . import limits, schemas
from .errors import api
from .parsing import form_fields, integer, json_body

IGNORED = ("reader_id", "chunker", "chunk_size", "chunk_overlap", "db_id", "knowledge_id")
UPLOAD_FIELDS = ("name", "description", "metadata", "text_content", "shared", "url", *IGNORED)
SORT_FIELDS = ("created_at", "updated_at", "name", "size")
NAME_MAX, DESCRIPTION_MAX, QUERY_MAX = 255, 1000, 1000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class DocumentNotFound(NotFound):
    detail = "Content not found."


def _iso(value) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def content_json(doc: KnowledgeDocument, caller: Caller) -> dict:
    """AgentOS' ContentResponseSchema, plus Cirkelline's `shared`, `owned`, `pages` and `chunks`."""
    return {"id": doc.content_id, "name": doc.name, "description": doc.description, "type": doc.file_type,
            "size": str(doc.size), "linked_to": None, "metadata": doc.metadata, "access_count": 0,
            "status": doc.status, "status_message": doc.status_message, "created_at": _iso(doc.created_at),
            "updated_at": _iso(doc.updated_at), "shared": doc.shared, "owned": doc.owner_id == caller.pk,
            "pages": doc.pages, "chunks": doc.chunk_count}


def hit_json(hit: Hit) -> dict:
    """AgentOS' VectorSearchResult of a chunk: `name` is its document's, `meta_data` says where it is."""
    return {"id": str(hit.chunk_id), "content": hit.text, "name": hit.document,
            "meta_data": {"document_id": hit.content_id, "document": hit.document, "chunk": hit.position + 1,
                          "page": hit.page, "shared": hit.shared},
            "usage": None, "reranking_score": None, "content_id": hit.content_id, "content_origin": None,
            "size": len(hit.text.encode())}


def _check_query(request: HttpRequest, allowed: tuple[str, ...]) -> dict[str, str]:
    unknown = sorted(set(request.GET) - set(allowed))
    if unknown:
        raise BadRequest(400, f"Unknown query parameter '{unknown[0][:40]}': this route takes {', '.join(allowed)}.")
    params = {}
    for name, values in request.GET.lists():
        if len(values) > 1:
            raise BadRequest(400, f"'{name}' is given more than once.")
        params[name] = values[0]
    check_text("The query", params)
    return params


def _flag(value: str | None) -> bool:
    if value in (None, "", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise BadRequest(400, "'shared' must be true or false.")


async def _upload_fields(request: HttpRequest) -> tuple[dict, object | None]:
    content_type = (request.content_type or "").lower()
    if content_type not in ("multipart/form-data", "application/x-www-form-urlencoded", ""):
        raise BadRequest(415, "Send the document as multipart/form-data (a 'file' part) or a form with "
                              "'text_content'.")
    fields = await form_fields(request)
    unknown = sorted(set(fields) - set(UPLOAD_FIELDS))
    if unknown:
        raise BadRequest(400, f"Unknown field '{unknown[0][:40]}': send file, {', '.join(UPLOAD_FIELDS)}.")
    files = request.FILES.getlist("file") if request.FILES else []
    if set(request.FILES or ()) - {"file"}:
        raise BadRequest(400, "Send the document as the multipart part 'file'.")
    if len(files) > 1:
        raise BadRequest(400, "Send one file per request.")
    return fields, files[0] if files else None


@api(("GET", "POST"), body=limits.DOCUMENT)
async def contents(request: HttpRequest, caller: Caller) -> HttpResponse:
    if request.method == "POST":
        return await _upload(request, caller)
    started = time.perf_counter()
    params = _check_query(request, ("limit", "page", "sort_by", "sort_order", "db_id", "knowledge_id"))
    limit = integer(params.get("limit"), "limit", 20, lo=1, hi=100)
    page = integer(params.get("page"), "page", 1, lo=1, hi=1_000_000)
    sort_by = params.get("sort_by") or "created_at"
    if sort_by not in SORT_FIELDS:
        raise BadRequest(400, f"'sort_by' must be one of {', '.join(SORT_FIELDS)}.")
    sort_order = params.get("sort_order") or "desc"
    if sort_order not in ("asc", "desc"):
        raise BadRequest(400, "'sort_order' must be asc or desc.")
    docs, total = await run_db(KnowledgeDocument.objects.page, caller.pk, limit=limit, page=page,
                                         sort_by=sort_by, ascending=sort_order == "asc")
    meta = schemas.page_meta(page=page, limit=limit, total=total, elapsed_ms=(time.perf_counter() - started) * 1000)
    return JsonResponse({"data": [content_json(d, caller) for d in docs], "meta": meta})


async def _upload(request: HttpRequest, caller: Caller) -> HttpResponse:
    _check_query(request, ("db_id", "knowledge_id"))
    fields, upload = await _upload_fields(request)
    if fields.get("url"):
        raise BadRequest(400, "Cirkelline does not fetch URLs: upload the document as a file.")
    text = fields.get("text_content")
    if (upload is None) == (text is None):
        raise BadRequest(400, "Provide a file or text_content to upload (one of them).")
    if upload is not None and upload.size > settings.CIRKELLINE_KNOWLEDGE_MAX_BYTES:
        raise BadRequest(413, f"{upload.name!r} is too large: the limit is "
                              f"{settings.CIRKELLINE_KNOWLEDGE_MAX_BYTES} bytes.")
    name = (fields.get("name") or "").strip() or (upload.name if upload is not None else "").strip() or "Text"
    description = fields.get("description") or ""
    if len(name) > NAME_MAX or any(ord(ch) < 32 for ch in name):
        raise BadRequest(400, f"'name' must be at most {NAME_MAX} characters, without control characters.")
    if len(description) > DESCRIPTION_MAX:
        raise BadRequest(400, f"'description' may have at most {DESCRIPTION_MAX} characters.")
    metadata = {}
    if fields.get("metadata"):
        try:
            metadata = json.loads(fields["metadata"])
        except ValueError:
            raise BadRequest(400, "'metadata' must be a JSON object.") from None
        if not isinstance(metadata, dict) or len(fields["metadata"]) > 10_000:
            raise BadRequest(400, "'metadata' must be a JSON object of at most 10000 characters.")
    shared = _flag(fields.get("shared"))
    if shared and not caller.is_staff:
        raise BadRequest(403, "Only staff may share a document with everyone.")
    if text is not None and (not text.strip() or _CONTROL.search(text)):
        raise BadRequest(400, "'text_content' must hold text: no control characters but tabs and new lines.")
    if upload is not None:
        content, declared = upload.read(), upload.content_type or ""
    else:
        content, declared = text.encode(), "text/plain"
    doc = await knowledge.accept(user_pk=caller.pk, username=caller.username, name=name, content=content,
                                 declared_type=declared, description=description, metadata=metadata, shared=shared)
    body = {"id": doc.content_id, "name": doc.name, "description": doc.description, "metadata": doc.metadata,
            "status": doc.status, "type": doc.file_type, "size": str(doc.size), "shared": doc.shared}
    return JsonResponse(body, status=202)


async def _visible(caller: Caller, content_id: str) -> KnowledgeDocument:
    if len(content_id) > 64:
        raise DocumentNotFound(content_id)
    doc = await run_db(KnowledgeDocument.objects.one, caller.pk, content_id)
    if doc is None:
        raise DocumentNotFound(content_id)
    return doc


def _patch_fields(request: HttpRequest) -> dict:
    """A PATCH body's fields: a form (as AgentOS takes them), multipart, or a JSON object. Django
    parses form bodies for POST only, so this reads them itself."""
    content_type = (request.content_type or "").lower()
    if content_type == "application/json":
        return json_body(request)
    if content_type in ("application/x-www-form-urlencoded", ""):
        try:
            data = QueryDict(request.body, encoding="utf-8")
        except UnicodeDecodeError:
            raise BadRequest(400, "The form is not UTF-8.") from None
    elif content_type == "multipart/form-data":
        try:
            data, _ = request.parse_file_upload(request.META, io.BytesIO(request.body))
        except MultiPartParserError:
            raise BadRequest(400, "The multipart body is malformed.") from None
    else:
        raise BadRequest(415, "Send the changes as a form, multipart or JSON.")
    fields = {}
    for key, values in data.lists():
        if len(values) > 1:
            raise BadRequest(400, f"The field {key[:40]!r} was sent {len(values)} times: send it once.")
        fields[key] = values[0]
    return fields


async def _change(request: HttpRequest, caller: Caller, content_id: str) -> HttpResponse:
    fields = _patch_fields(request)
    unknown = sorted(set(fields) - {"name", "description", "metadata", "shared", "reader_id"})
    if unknown:
        raise BadRequest(400, f"Unknown field '{str(unknown[0])[:40]}': send name, description, metadata, shared.")
    check_text("The body", fields)
    changes: dict = {}
    if fields.get("name") not in (None, ""):
        name = str(fields["name"]).strip()
        if not name or len(name) > NAME_MAX or any(ord(ch) < 32 for ch in name):
            raise BadRequest(400, f"'name' must be 1-{NAME_MAX} characters, without control characters.")
        changes["name"] = name
    if fields.get("description") is not None:
        if not isinstance(fields["description"], str) or len(fields["description"]) > DESCRIPTION_MAX:
            raise BadRequest(400, f"'description' must be a string of at most {DESCRIPTION_MAX} characters.")
        changes["description"] = fields["description"]
    if fields.get("metadata") not in (None, ""):
        metadata = fields["metadata"]
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                raise BadRequest(400, "'metadata' must be a JSON object.") from None
        if not isinstance(metadata, dict) or len(json.dumps(metadata)) > 10_000:
            raise BadRequest(400, "'metadata' must be a JSON object of at most 10000 characters.")
        changes["metadata"] = metadata
    if fields.get("shared") is not None:
        shared = fields["shared"] if isinstance(fields["shared"], bool) else _flag(str(fields["shared"]))
        if not caller.is_staff:
            raise BadRequest(403, "Only staff may share a document with everyone or take the sharing back.")
        changes["shared"] = shared
    outcome = await run_db(KnowledgeDocument.objects.change, caller.pk, content_id, is_staff=caller.is_staff,
                           changes=changes)
    if outcome == "missing":
        raise DocumentNotFound(content_id)
    if outcome == "shared":
        raise BadRequest(403, "Cannot modify shared content: only staff may change a shared document.")
    return JsonResponse(content_json(outcome, caller))


@api(("GET", "PATCH", "DELETE"))
async def content_detail(request: HttpRequest, content_id: str, caller: Caller) -> HttpResponse:
    _check_query(request, ("db_id", "knowledge_id"))
    if request.method == "PATCH":
        return await _change(request, caller, content_id)
    if request.method == "DELETE":
        outcome = await run_db(KnowledgeDocument.objects.remove, caller.pk, content_id,
                                         is_staff=caller.is_staff)
        if outcome == "missing":
            raise DocumentNotFound(content_id)
        if outcome == "shared":
            raise BadRequest(403, "Cannot delete shared content: only staff may delete a shared document.")
        return JsonResponse({"id": content_id})
    return JsonResponse(content_json(await _visible(caller, content_id), caller))


@api(("GET",))
async def content_status(request: HttpRequest, content_id: str, caller: Caller) -> HttpResponse:
    _check_query(request, ("db_id", "knowledge_id"))
    doc = await _visible(caller, content_id)
    return JsonResponse({"id": doc.content_id, "status": doc.status, "status_message": doc.status_message})


def _check_ignored(body: dict) -> None:
    """AgentOS' fields this search ignores must still have their types (a client's mistake is a 400)."""
    for name in ("db_id", "knowledge_id", "search_type"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise BadRequest(400, f"'{name}' must be a string or null.")
    if body.get("filters") is not None and not isinstance(body["filters"], dict):
        raise BadRequest(400, "'filters' must be an object or null.")
    ids = body.get("vector_db_ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise BadRequest(400, "'vector_db_ids' must be a list of strings or null.")
    unknown_meta = sorted(set(body.get("meta") or {}) - {"limit", "page"})
    if unknown_meta:
        raise BadRequest(400, f"Unknown field 'meta.{str(unknown_meta[0])[:40]}'.")


@api(("GET", "POST"))
async def search(request: HttpRequest, caller: Caller) -> HttpResponse:
    started = time.perf_counter()
    if request.method == "POST":
        _check_query(request, ())
        if (request.content_type or "").lower() != "application/json":
            raise BadRequest(415, "Send a JSON object (Content-Type: application/json).")
        body = await json_body(request)
        unknown = sorted(set(body) - {"query", "max_results", "meta", "search_type", "filters", "db_id",
                                      "knowledge_id", "vector_db_ids"})
        if unknown:
            raise BadRequest(400, f"Unknown field '{str(unknown[0])[:40]}'.")
        meta = body.get("meta")
        meta = {} if meta is None else meta
        if not isinstance(meta, dict):
            raise BadRequest(400, "'meta' must be an object: {\"limit\", \"page\"}.")
        _check_ignored(body)
        query, max_results = body.get("query"), body.get("max_results")
        limit, page = meta.get("limit"), meta.get("page")
    else:
        params = _check_query(request, ("query", "max_results", "limit", "page", "search_type", "db_id",
                                        "knowledge_id"))
        query, max_results = params.get("query"), params.get("max_results")
        limit, page = params.get("limit"), params.get("page")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest(400, "'query' is required: a non-empty string.")
    check_text("'query'", query)
    if len(query) > QUERY_MAX:
        raise BadRequest(400, f"'query' may have at most {QUERY_MAX} characters.")
    max_results = integer(max_results, "max_results", knowledge.SEARCH_MAX, lo=1, hi=knowledge.SEARCH_MAX)
    limit = integer(limit, "limit", 20, lo=1, hi=100)
    page = integer(page, "page", 1, lo=1, hi=1_000_000)
    hits = await knowledge.search(caller.pk, query, limit=max_results, username=caller.username)
    shown = hits[(page - 1) * limit: page * limit]
    meta = schemas.page_meta(page=page, limit=limit, total=len(hits),
                             elapsed_ms=(time.perf_counter() - started) * 1000)
    return JsonResponse({"data": [hit_json(h) for h in shown], "meta": meta})
