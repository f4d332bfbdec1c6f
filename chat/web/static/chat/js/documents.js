// "My documents": the user's documents and the shared ones (GET /knowledge/content), uploaded
// with a progress bar each (XMLHttpRequest: fetch reports no upload progress), their processing
// status followed until it ends (GET /knowledge/content/{id}/status), one deleted at a time.
// Text only, never markup.

import { api, ApiError } from "./api.js";
import { el, formatSize, icon } from "./view.js";

const POLL_MS = 1000;
const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

function describe(error) {
  return error instanceof ApiError ? error.detail : String(error);
}

const STATUS_TEXT = { processing: "Reading…", completed: "Ready", failed: "Failed" };

// POST /knowledge/content with the file; `onProgress(fraction)` while it uploads. The JSON answer.
function uploadWithProgress(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/knowledge/content");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, (body && body.detail) || `The server answered ${xhr.status}.`, body));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "The server cannot be reached.")));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

export class DocumentsDialog {
  constructor() {
    const $ = (id) => document.getElementById(id);
    this.dialog = $("documents");
    this.list = $("document-list");
    this.empty = $("document-empty");
    this.notice = $("documents-notice");
    this.input = $("document-file");
    this.uploads = $("document-uploads");
    this.polls = new Map();
    this.input.addEventListener("change", () => {
      const files = [...this.input.files];
      this.input.value = "";
      for (const file of files) this.upload(file);
    });
    $("documents-close").addEventListener("click", () => this.dialog.close());
    this.dialog.addEventListener("close", () => this.stopPolling());
  }

  showNotice(text) {
    this.notice.textContent = text || "";
    this.notice.hidden = !text;
  }

  async open() {
    this.showNotice("");
    if (!this.dialog.open) this.dialog.showModal();
    await this.load();
  }

  stopPolling() {
    for (const timer of this.polls.values()) clearTimeout(timer);
    this.polls.clear();
  }

  async load() {
    let body;
    try {
      body = await api.documents();
    } catch (error) {
      this.showNotice(`Your documents could not be loaded: ${describe(error)}`);
      return;
    }
    this.list.replaceChildren(...body.data.map((doc) => this.item(doc)));
    this.empty.hidden = body.data.length > 0;
    for (const doc of body.data) if (doc.status === "processing") this.poll(doc.id);
  }

  item(doc) {
    const li = el("li", "document");
    li.dataset.documentId = doc.id;
    li.dataset.status = doc.status;
    const body = el("div", "document-body");
    body.append(el("p", "document-name", doc.name));
    const meta = el("p", "document-meta");
    const status = el("span", "document-status", STATUS_TEXT[doc.status] || doc.status);
    status.setAttribute("role", "status");
    meta.append(status, el("span", "", formatSize(Number(doc.size) || 0)));
    if (doc.status === "completed" && doc.chunks) meta.append(el("span", "", `${doc.chunks} passage${doc.chunks === 1 ? "" : "s"}`));
    if (doc.shared) meta.append(el("span", "document-shared", "Shared with everyone"));
    body.append(meta);
    if (doc.status_message) body.append(el("p", "document-message", doc.status_message));
    li.append(body);
    if (doc.owned) {
      const remove = el("button", "icon-btn delete");
      remove.type = "button";
      remove.append(icon("trash"));
      remove.setAttribute("aria-label", `Delete ${doc.name}`);
      remove.addEventListener("click", () => this.remove(doc, li));
      li.append(remove);
    }
    return li;
  }

  async upload(file) {
    this.showNotice("");
    const row = el("li", "document-upload");
    const label = el("span", "document-name", file.name);
    const bar = el("progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", `Uploading ${file.name}`);
    row.append(label, bar);
    this.uploads.append(row);
    try {
      const accepted = await uploadWithProgress(file, (fraction) => { bar.value = fraction; });
      row.remove();
      await this.load();
      this.poll(accepted.id);
    } catch (error) {
      row.remove();
      this.showNotice(`${file.name} was not uploaded: ${describe(error)}`);
    }
  }

  poll(id) {
    if (this.polls.has(id)) return;
    const check = async () => {
      let status;
      try {
        status = await api.documentStatus(id);
      } catch {
        this.polls.delete(id);
        return;
      }
      if (status.status === "processing" && this.dialog.open) {
        this.polls.set(id, setTimeout(check, POLL_MS));
        return;
      }
      this.polls.delete(id);
      if (this.dialog.open) await this.load();
    };
    this.polls.set(id, setTimeout(check, POLL_MS));
  }

  async remove(doc, li) {
    if (!window.confirm(`Delete “${doc.name}”? Cirkelline will no longer find it.`)) return;
    this.showNotice("");
    try {
      await api.deleteDocument(doc.id);
    } catch (error) {
      if (error.status !== 404) {
        this.showNotice(`Not deleted: ${describe(error)}`);
        return;
      }
    }
    li.remove();
    this.empty.hidden = this.list.children.length > 0;
  }
}
