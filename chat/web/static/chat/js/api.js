// HTTP calls of the chat page: the API with the login cookie, and the CSRF token on writes.

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

// The JSON answer of a call; `withResponse`: {data, response} (for its headers).
async function call(method, url, { json, form, withResponse = false } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "The server cannot be reached. Check your connection and try again.");
  }
  if (response.status === 204) return withResponse ? { data: null, response } : null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = (data && data.detail) || `The server answered ${response.status}.`;
    throw new ApiError(response.status, detail, data);
  }
  return withResponse ? { data, response } : data;
}

const path = (id) => encodeURIComponent(id);

export const api = {
  sessions: () => call("GET", "/sessions?type=team&limit=100&sort_by=updated_at&sort_order=desc"),
  // A page of a session's runs: the `limit` latest team runs before the team run `before` (the
  // latest without it), with their member runs; `next`: the `before` of the page before it, or null.
  runs: async (sessionId, { limit, before } = {}) => {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before) query.set("before", before);
    const { data, response } = await call("GET", `/sessions/${path(sessionId)}/runs?${query}`, { withResponse: true });
    return { runs: data, next: response.headers.get("X-Next-Before") };
  },
  rename: (sessionId, name) => call("POST", `/sessions/${path(sessionId)}/rename`, { json: { session_name: name } }),
  remove: (sessionId) => call("DELETE", `/sessions/${path(sessionId)}`),
  giveFeedback: (runId, rating, comment) => call("POST", `/runs/${path(runId)}/feedback`, { json: { rating, comment } }),
  removeFeedback: (runId) => call("DELETE", `/runs/${path(runId)}/feedback`),
  sessionFeedback: (sessionId) => call("GET", `/sessions/${path(sessionId)}/feedback`),
  usage: (from, to) => call("GET", `/usage?from=${from}&to=${to}`),
  profile: () => call("GET", "/profile"),
  saveProfile: (changes) => call("PATCH", "/profile", { json: changes }),
  memories: ({ search, page, limit }) => {
    const query = new URLSearchParams({ page: String(page), limit: String(limit) });
    if (search) query.set("search_content", search);
    return call("GET", `/memories?${query}`);
  },
  remember: (memory) => call("POST", "/memories", { json: { memory } }),
  forget: (memoryId) => call("DELETE", `/memories/${path(memoryId)}`),
  forgetAll: () => call("DELETE", "/memories", { json: { all: true } }),
  documents: () => call("GET", "/knowledge/content?limit=100"),
  documentStatus: (id) => call("GET", `/knowledge/content/${path(id)}/status`),
  deleteDocument: (id) => call("DELETE", `/knowledge/content/${path(id)}`),
  upload: (files) => {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    return call("POST", "/uploads", { form });
  },
};
