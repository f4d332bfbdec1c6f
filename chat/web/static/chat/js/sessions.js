// The list of the user's chats (most recently active first): open, rename in place, delete.

import { el, icon } from "./view.js";

export class SessionList {
  constructor(root, empty, { onOpen, onRename, onDelete }) {
    this.root = root;
    this.empty = empty;
    this.onOpen = onOpen;
    this.onRename = onRename;
    this.onDelete = onDelete;
    this.sessions = [];
    this.current = null;
  }

  render(sessions) {
    this.sessions = sessions;
    this.root.replaceChildren(...sessions.map((s) => this.item(s)));
    this.empty.hidden = sessions.length > 0;
  }

  // A chat that exists only once its first answer is stored: shown at the top meanwhile.
  addProvisional(sessionId, name) {
    if (this.sessions.some((s) => s.session_id === sessionId)) return;
    this.render([{ session_id: sessionId, session_name: name, provisional: true }, ...this.sessions]);
    this.setCurrent(sessionId);
  }

  setCurrent(sessionId) {
    this.current = sessionId;
    for (const li of this.root.children) {
      const link = li.querySelector("a");
      if (li.dataset.sessionId === sessionId) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  // A new name from the server (the model's title, or a rename in another window): changed in
  // place, so an inline rename in progress is left alone. Text only, never markup.
  setName(sessionId, name) {
    const session = this.sessions.find((s) => s.session_id === sessionId);
    if (!session) return false;
    session.session_name = name;
    const li = [...this.root.children].find((node) => node.dataset.sessionId === sessionId);
    const link = li && li.querySelector("a.session-link");
    if (link) {
      link.textContent = name || "Untitled chat";
      link.title = name || "";
      const rename = li.querySelector("button.rename");
      const remove = li.querySelector("button.delete");
      if (rename) rename.setAttribute("aria-label", `Rename “${name || "Untitled chat"}”`);
      if (remove) remove.setAttribute("aria-label", `Delete “${name || "Untitled chat"}”`);
    }
    return true;
  }

  nameOf(sessionId) {
    const session = this.sessions.find((s) => s.session_id === sessionId);
    return session ? session.session_name || "Untitled chat" : null;
  }

  item(session) {
    const li = el("li", "session");
    li.dataset.sessionId = session.session_id;
    const link = el("a", "session-link", session.session_name || "Untitled chat");
    link.href = `/c/${encodeURIComponent(session.session_id)}`;
    link.title = session.session_name || "";
    if (session.session_id === this.current) link.setAttribute("aria-current", "page");
    link.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      this.onOpen(session.session_id);
    });
    li.append(link);
    if (!session.provisional) {
      const rename = el("button", "icon-btn rename");
      rename.append(icon("pencil"));
      rename.type = "button";
      rename.setAttribute("aria-label", `Rename “${session.session_name || "Untitled chat"}”`);
      rename.addEventListener("click", () => this.startRename(li, session));
      const remove = el("button", "icon-btn delete");
      remove.append(icon("trash"));
      remove.type = "button";
      remove.setAttribute("aria-label", `Delete “${session.session_name || "Untitled chat"}”`);
      remove.addEventListener("click", () => this.onDelete(session));
      li.append(rename, remove);
    }
    return li;
  }

  startRename(li, session) {
    const input = el("input", "rename-input");
    input.type = "text";
    input.value = session.session_name || "";
    input.maxLength = 255;
    input.setAttribute("aria-label", "New name of the chat");
    li.replaceChildren(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const name = input.value.trim();
      if (save && name && name !== session.session_name) await this.onRename(session, name);
      else this.render(this.sessions);
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }
}
