// "What Cirkelline remembers": the user's memories (GET /memories), searchable, one deleted at a
// time or all at once (after a confirmation), a new one added by hand. Text only, never markup.

import { api, ApiError } from "./api.js";
import { el, icon } from "./view.js";

const PAGE = 50;

function describe(error) {
  return error instanceof ApiError ? error.detail : String(error);
}

export class MemoriesDialog {
  constructor() {
    const $ = (id) => document.getElementById(id);
    this.dialog = $("memories");
    this.state = $("memories-state");
    this.search = $("memory-search");
    this.list = $("memory-list");
    this.empty = $("memory-empty");
    this.more = $("memory-more");
    this.notice = $("memories-notice");
    this.addInput = $("memory-new");
    this.clearButton = $("memory-clear");
    this.page = 1;
    this.total = 0;
    this.token = 0;
    this.timer = 0;
    this.search.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.load(), 250);
    });
    $("memory-search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.load();
    });
    this.more.addEventListener("click", () => this.load({ append: true }));
    $("memory-add-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.add();
    });
    this.clearButton.addEventListener("click", () => this.clearAll());
    $("memories-close").addEventListener("click", () => this.dialog.close());
  }

  showNotice(text) {
    this.notice.textContent = text || "";
    this.notice.hidden = !text;
  }

  async open() {
    this.showNotice("");
    this.search.value = "";
    let profile = null;
    try {
      profile = await api.profile();
    } catch {
      profile = null;
    }
    this.state.textContent = profile && !profile.memories_enabled
      ? "Memory is off: Cirkelline neither uses nor adds memories (switch it on in Settings). What is saved stays until you delete it."
      : "Cirkelline saves what you tell it to remember and looks it up when it helps; each time shows in the chat.";
    if (!this.dialog.open) this.dialog.showModal();
    await this.load();
  }

  // Reloads while open, for a run that used the memory tools.
  refresh() {
    if (this.dialog.open) this.load();
  }

  async load({ append = false } = {}) {
    const token = ++this.token;
    const page = append ? this.page + 1 : 1;
    let body;
    try {
      body = await api.memories({ search: this.search.value.trim(), page, limit: PAGE });
    } catch (error) {
      if (token === this.token) this.showNotice(`Your memories could not be loaded: ${describe(error)}`);
      return;
    }
    if (token !== this.token) return; // a newer search is on its way
    this.page = page;
    this.total = body.meta.total_count;
    const items = body.data.map((memory) => this.item(memory));
    if (append) this.list.append(...items);
    else this.list.replaceChildren(...items);
    this.more.hidden = this.list.children.length >= this.total;
    this.empty.hidden = this.total > 0;
    this.empty.textContent = this.search.value.trim() ? "No memory matches." : "Nothing remembered yet.";
    this.clearButton.disabled = this.total === 0 && !this.search.value.trim();
  }

  item(memory) {
    const li = el("li", "memory");
    li.dataset.memoryId = memory.memory_id;
    const text = el("p", "memory-text", memory.memory);
    const meta = el("p", "memory-meta");
    if (memory.topics && memory.topics.length) meta.append(el("span", "memory-topics", memory.topics.join(" · ")));
    if (memory.updated_at) {
      const time = el("time", "", new Date(memory.updated_at).toLocaleDateString());
      time.dateTime = memory.updated_at;
      meta.append(time);
    }
    const remove = el("button", "icon-btn delete");
    remove.type = "button";
    remove.append(icon("trash"));
    remove.setAttribute("aria-label", `Forget “${memory.memory.slice(0, 60)}”`);
    remove.addEventListener("click", () => this.remove(memory, li));
    const body = el("div", "memory-body");
    body.append(text, meta);
    li.append(body, remove);
    return li;
  }

  async remove(memory, li) {
    this.showNotice("");
    try {
      await api.forget(memory.memory_id);
    } catch (error) {
      if (error.status !== 404) {
        this.showNotice(`Not deleted: ${describe(error)}`);
        return;
      }
    }
    li.remove();
    this.total = Math.max(0, this.total - 1);
    this.empty.hidden = this.total > 0;
    this.clearButton.disabled = this.total === 0;
  }

  async clearAll() {
    if (!window.confirm("Delete everything Cirkelline remembers about you? This cannot be undone.")) return;
    this.showNotice("");
    try {
      await api.forgetAll();
    } catch (error) {
      this.showNotice(`Not deleted: ${describe(error)}`);
      return;
    }
    this.search.value = "";
    await this.load();
  }

  async add() {
    const text = this.addInput.value.trim();
    if (!text) return;
    this.showNotice("");
    try {
      await api.remember(text);
    } catch (error) {
      this.showNotice(`Not added: ${describe(error)}`);
      return;
    }
    this.addInput.value = "";
    this.search.value = "";
    await this.load();
  }
}
