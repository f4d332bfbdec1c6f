"""The OpenAPI document's knowledge routes (AgentOS' `/knowledge/content` and `/knowledge/search`):
the caller's documents and the shared ones, and their bodies' schemas."""

from __future__ import annotations

import copy
from typing import Any

from chat.api.knowledge import DESCRIPTION_MAX, NAME_MAX, QUERY_MAX, SORT_FIELDS
from chat.knowledge.extract import SUPPORTED
from chat.runs.knowledge import SEARCH_MAX

from .common import (
    BOOL,
    DATE_TIME,
    FORM,
    INT,
    JSON,
    MULTIPART,
    NO_NUL_JSON,
    NULLABLE_STR,
    PAGE,
    PAGE_META,
    READ_AUTH,
    STR,
    TEXT,
    WRITE_AUTH,
    error_response,
    errors,
    obj,
    ok,
    op,
    path_param,
    query,
    ref,
)

STATUSES = ["processing", "completed", "failed"]
# Text: something besides white space, no control characters but tabs and new lines (else 400 or 415).
_TEXT = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f]*[^\s\u0000-\u001f][^\u0000-\u0008\u000b\u000c\u000e-\u001f]*$"
CONTENT_EXAMPLE = {"id": "3c2fc685-d451-4d47-b0c0-b9a544c672b7", "name": "handbook.pdf", "description": "",
                   "type": "application/pdf", "size": "251261", "linked_to": None, "metadata": {},
                   "access_count": 0, "status": "completed", "status_message": "",
                   "created_at": "2026-12-01T09:30:00Z", "updated_at": "2026-12-01T09:30:02Z", "shared": False,
                   "owned": True, "pages": 12, "chunks": 31}
# A question: something besides white space, no NUL (else 400).
_QUERY = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
_NULLABLE_TEXT = {**TEXT, "type": ["string", "null"]}


def knowledge_schemas() -> dict[str, Any]:
    return {
        "Content": obj({
            "id": STR, "name": STR, "description": STR,
            "type": {"type": "string", "enum": list(SUPPORTED), "description": "The type it was read as."},
            "size": {"type": "string", "description": "Bytes uploaded (a string, as AgentOS sends it)."},
            "linked_to": {"type": "null"}, "metadata": {"type": "object"}, "access_count": INT,
            "status": {"type": "string", "enum": STATUSES}, "status_message": STR,
            "created_at": DATE_TIME, "updated_at": DATE_TIME,
            "shared": {**BOOL, "description": "Shared by staff with every user."},
            "owned": {**BOOL, "description": "Yours (you may delete it)."},
            "pages": INT, "chunks": INT,
        }, ["id", "name", "type", "size", "status", "status_message", "created_at", "updated_at", "shared", "owned"],
            description="AgentOS' `ContentResponseSchema`, plus `shared`, `owned`, `pages` and `chunks`."),
        "ContentAccepted": obj({
            "id": STR, "name": STR, "description": STR, "metadata": {"type": "object"},
            "status": {"const": "processing"}, "type": {"type": "string", "enum": list(SUPPORTED)}, "size": STR,
            "shared": BOOL}, ["id", "name", "status"],
            description="Accepted: it is read in the background (`GET /knowledge/content/{id}/status`)."),
        "ContentPage": obj({"data": {"type": "array", "items": ref("Content")}, "meta": PAGE_META},
                           ["data", "meta"]),
        "ContentStatus": obj({"id": STR, "status": {"type": "string", "enum": STATUSES}, "status_message": STR},
                             ["id", "status", "status_message"], description="AgentOS' `ContentStatusResponse`."),
        "ContentDeleted": obj({"id": STR}, ["id"]),
        "ContentUpload": obj({
            "file": {"type": "string", "contentMediaType": "application/octet-stream",
                     "description": "The document: PDF, DOCX, Markdown, HTML or plain text (UTF-8), at most "
                                    "`CIRKELLINE_KNOWLEDGE_MAX_BYTES`. Its type is told by its bytes."},
            "text_content": {"type": "string", "pattern": _TEXT,
                             "description": "Text to keep as a document (instead of a file)."},
            "name": {"type": "string", "maxLength": NAME_MAX, "pattern": r"^[^\u0000-\u001f]*$",
                     "description": "Default: the file's name."},
            "description": {"type": "string", "maxLength": DESCRIPTION_MAX, "pattern": r"^[^\u0000]*$"},
            "metadata": {"type": "string", "description": "A JSON object, kept with the document."},
            "shared": {"type": "string", "enum": ["true", "false"],
                       "description": "Staff only: every user may read and search it."},
            **{name: {"type": "string", "description": "AgentOS': accepted and ignored."}
               for name in ("reader_id", "chunker", "chunk_size", "chunk_overlap")},
        }, extra=False, oneOf=[{"required": ["file"]}, {"required": ["text_content"]}],
            description="A `file` or `text_content`, not both. The file must be a document its bytes tell (else 415)."),
        "ContentText": obj({
            "text_content": {"type": "string", "pattern": _TEXT, "description": "Text to keep as a document."},
            "name": {"type": "string", "maxLength": NAME_MAX, "pattern": r"^[^\u0000-\u001f]*$"},
            "description": {"type": "string", "maxLength": DESCRIPTION_MAX, "pattern": r"^[^\u0000]*$"},
            "metadata": {"type": "string", "description": "A JSON object, kept with the document."},
            "shared": {"type": "string", "enum": ["true", "false"], "description": "Staff only."},
        }, ["text_content"], extra=False, description="A text as a document (form-urlencoded)."),
        "ContentChanges": obj({
            "name": {"type": "string", "maxLength": NAME_MAX, "pattern": r"^[^\u0000-\u001f]*$",
                     "description": "Empty: unchanged."},
            "description": {"type": "string", "maxLength": DESCRIPTION_MAX, "pattern": r"^[^\u0000]*$"},
            "metadata": {"type": "string", "description": "A JSON object (its text), replacing the metadata."},
            "shared": {"type": "string", "enum": ["true", "false"], "description": "Staff only."},
            "reader_id": {**TEXT, "description": "AgentOS': accepted and ignored."},
        }, extra=False, description="AgentOS' content update (form fields); the same fields as a JSON object are "
                                    "taken too."),
        "SearchResult": obj({
            "id": {"type": "string", "description": "The chunk's id."}, "content": STR,
            "name": {"type": "string", "description": "Its document's name."},
            "meta_data": obj({"document_id": STR, "document": STR,
                              "chunk": {"type": "integer", "minimum": 1, "description": "Its place in the document."},
                              "page": {"type": ["integer", "null"], "description": "A PDF's page."},
                              "shared": BOOL}, ["document_id", "document", "chunk", "page", "shared"]),
            "usage": {"type": "null"}, "reranking_score": {"type": "null"}, "content_id": STR,
            "content_origin": NULLABLE_STR, "size": INT,
        }, ["id", "content", "name", "meta_data", "content_id"], description="AgentOS' `VectorSearchResult`."),
        "SearchPage": obj({"data": {"type": "array", "items": ref("SearchResult")}, "meta": PAGE_META},
                          ["data", "meta"]),
        "SearchRequest": obj({
            "query": {"type": "string", "minLength": 1, "maxLength": QUERY_MAX, "pattern": _QUERY},
            "max_results": {"type": ["integer", "null"], "minimum": 1, "maximum": SEARCH_MAX},
            "meta": {**obj({"limit": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
                            "page": {"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000}},
                           extra=False),
                     "type": ["object", "null"]},
            "search_type": _NULLABLE_TEXT, "filters": {**NO_NUL_JSON, "type": ["object", "null"]},
            "db_id": _NULLABLE_TEXT, "knowledge_id": _NULLABLE_TEXT,
            "vector_db_ids": {"type": ["array", "null"], "items": TEXT},
        }, ["query"], extra=False, description="AgentOS' `VectorSearchRequestSchema` (search_type, filters and "
                                               "the ids are accepted and ignored)."),
    }


def knowledge_paths() -> dict[str, Any]:
    ignored = [query("db_id", "Accepted and ignored (AgentOS': there is one knowledge base).", TEXT),
               query("knowledge_id", "Accepted and ignored (AgentOS').", TEXT)]
    content_id = path_param("content_id", "A document you may read (another user's private one is a 404).",
                            {"type": "string", "maxLength": 64, "example": CONTENT_EXAMPLE["id"]})
    full = error_response("You keep `CIRKELLINE_KNOWLEDGE_MAX_DOCUMENTS` documents already.",
                          example="You have 200 documents, the most Cirkelline keeps: delete some before uploading "
                                  "more.")
    unsupported = error_response("Not a document type Cirkelline reads (told by its bytes: a binary named .txt is "
                                 "refused), or the body is not multipart or a form.",
                                 example="'image.png' is not a supported document: send PDF, DOCX, Markdown, HTML "
                                         "or plain text (UTF-8).")
    too_large = error_response("The file is larger than `CIRKELLINE_KNOWLEDGE_MAX_BYTES`.",
                               example="'big.pdf' is too large: the limit is 10485760 bytes.")
    shared = error_response("`shared` from a user who is not staff, or deleting a shared document you did not "
                            "upload (staff only), or a cookie write without CSRF token.",
                            example="Cannot delete shared content: only staff may delete a shared document.")
    search_params = [{**query("query", "What to look for.", {"type": "string", "minLength": 1, "maxLength": QUERY_MAX,
                                                             "pattern": _QUERY}), "required": True},
                     query("max_results", "At most this many results in all.",
                           {"type": "integer", "minimum": 1, "maximum": SEARCH_MAX, "default": SEARCH_MAX}),
                     *PAGE, query("search_type", "Accepted and ignored.", TEXT), *ignored]
    search_description = (
        "Chunks of your documents and the shared ones, best first: the database's full-text ranking (SQLite FTS5 "
        "BM25; PostgreSQL tsvector), fused with the embedding model's ranking when one is configured "
        "(`CIRKELLINE_EMBEDDING_MODEL`; reciprocal rank fusion). The filter to what you may read is inside the "
        "ranking query. Embedding the question is a billed model call (docs/COST.md).")
    return {
        "/knowledge/content": {
            "post": op("Upload a document (read in the background)", "knowledge",
                       {**ok(ref("ContentAccepted"), status=202, description="Accepted; poll its status."),
                        **errors(400, 401), "403": shared, **errors(405), "409": full, "413": too_large,
                        "415": unsupported, **errors(503)},
                       security=WRITE_AUTH, parameters=ignored, operation_id="upload_content",
                       request_body={"required": True, "content": {MULTIPART: {"schema": ref("ContentUpload")},
                                                                   FORM: {"schema": ref("ContentText")}}},
                       description="PDF, DOCX, Markdown, HTML or plain text. The text is extracted, cut into "
                                   "chunks and stored (embedded too with an embedding model); the status says "
                                   "`completed`, or `failed` with the reason (unreadable, encrypted, over "
                                   "`CIRKELLINE_KNOWLEDGE_MAX_PAGES` pages or `CIRKELLINE_KNOWLEDGE_MAX_CHARS` "
                                   "characters, a compression bomb). `url` is refused (400)."),
            "get": op("Your documents and the shared ones, a page at a time (AgentOS shape)", "knowledge",
                      {**ok(ref("ContentPage")), **errors(400, 401, 405, 503)}, security=READ_AUTH,
                      parameters=[*PAGE, query("sort_by", "Order by.", {"type": "string", "enum": list(SORT_FIELDS),
                                                                        "default": "created_at"}),
                                  query("sort_order", "Direction.", {"type": "string", "enum": ["asc", "desc"],
                                                                     "default": "desc"}), *ignored],
                      operation_id="get_content"),
        },
        "/knowledge/content/{content_id}": {
            "get": op("A document", "knowledge", {**ok(ref("Content"), example=CONTENT_EXAMPLE),
                                                  **errors(400, 401, 404, 405, 503)},
                      security=READ_AUTH, parameters=[content_id, *ignored], operation_id="get_content_by_id"),
            "patch": op("Change a document's name, description, metadata, or (staff) its sharing", "knowledge",
                        {**ok(ref("Content"), example=CONTENT_EXAMPLE), **errors(400, 401),
                         "403": copy.deepcopy(shared),
                         **errors(404, 405, 415, 503)},
                        security=WRITE_AUTH, parameters=[content_id, *ignored], operation_id="update_content",
                        request_body={"required": True, "content": {FORM: {"schema": ref("ContentChanges")},
                                                                    MULTIPART: {"schema": ref("ContentChanges")}}}),
            "delete": op("Delete a document with its chunks", "knowledge",
                         {**ok(ref("ContentDeleted")), **errors(400, 401), "403": copy.deepcopy(shared),
                          **errors(404, 405, 503)},
                         security=WRITE_AUTH, parameters=[content_id, *ignored], operation_id="delete_content_by_id"),
        },
        "/knowledge/content/{content_id}/status": {"get": op(
            "A document's processing status", "knowledge", {**ok(ref("ContentStatus")),
                                                            **errors(400, 401, 404, 405, 503)},
            security=READ_AUTH, parameters=[content_id, *ignored], operation_id="get_content_status")},
        "/knowledge/search": {
            "get": op("Search your documents and the shared ones", "knowledge",
                      {**ok(ref("SearchPage")), **errors(400, 401, 405, 503)}, security=READ_AUTH,
                      parameters=search_params, operation_id="search_knowledge_get", description=search_description),
            "post": op("Search your documents and the shared ones (AgentOS' body)", "knowledge",
                       {**ok(ref("SearchPage")), **errors(400, 401, 403, 405, 415, 503)}, security=WRITE_AUTH,
                       request_body={"required": True, "content": {JSON: {"schema": ref("SearchRequest"),
                                                                          "example": {"query": "notice period",
                                                                                      "meta": {"limit": 5}}}}},
                       operation_id="search_knowledge", description=search_description),
        },
    }
