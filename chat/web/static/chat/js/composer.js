// The message box: Enter sends, Shift+Enter is a new line; attachments (picked, dropped or pasted)
// checked against the API's own limits, so a person learns at once what cannot be sent and why.

import { el, formatSize, icon } from "./view.js";

export class Composer {
  constructor({ form, input, fileInput, list, notice, deep, config, onSend }) {
    this.form = form;
    this.input = input;
    this.fileInput = fileInput;
    this.list = list;
    this.noticeNode = notice;
    this.deep = deep;
    this.limits = config.limits;
    this.types = new Map();
    for (const [kind, types] of Object.entries(config.mediaTypes)) for (const type of types) this.types.set(type, kind);
    this.files = [];
    this.onSend = onSend;
    this.blocked = false;

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    input.addEventListener("input", () => this.autosize());
    fileInput.addEventListener("change", () => {
      this.add([...fileInput.files]);
      fileInput.value = "";
    });
    form.addEventListener("dragover", (event) => event.preventDefault());
    form.addEventListener("drop", (event) => {
      event.preventDefault();
      this.add([...(event.dataTransfer?.files || [])]);
    });
    input.addEventListener("paste", (event) => {
      const files = [...(event.clipboardData?.files || [])];
      if (files.length) {
        event.preventDefault();
        this.add(files);
      }
    });
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, window.innerHeight * 0.4)}px`;
  }

  notice(text) {
    this.noticeNode.textContent = text || "";
    this.noticeNode.hidden = !text;
  }

  kindOf(file) {
    const type = (file.type || "").toLowerCase();
    if (this.types.has(type)) return this.types.get(type);
    // No or a generic type: the server guesses from the name, as it does for API clients.
    return type === "" || type === "application/octet-stream" ? "document" : null;
  }

  add(files) {
    const problems = [];
    for (const file of files) {
      if (this.files.length >= this.limits.maxFiles) {
        problems.push(`At most ${this.limits.maxFiles} files per message.`);
        break;
      }
      const kind = this.kindOf(file);
      if (!kind) {
        problems.push(`${file.name}: this file type (${file.type}) cannot be sent. Send images, audio, video or ` +
          "documents (PDF, text, Office).");
      } else if (file.size > this.limits.maxFileBytes) {
        problems.push(`${file.name} is ${formatSize(file.size)}; the limit is ${formatSize(this.limits.maxFileBytes)} ` +
          "per file.");
      } else {
        this.files.push({ file, kind, preview: kind === "image" ? URL.createObjectURL(file) : null });
      }
    }
    this.notice(problems.join(" "));
    this.renderFiles();
  }

  renderFiles() {
    this.list.replaceChildren(...this.files.map((item, index) => {
      const li = el("li", `attachment ${item.kind}`);
      if (item.preview) {
        const img = el("img");
        img.src = item.preview;
        img.alt = "";
        li.append(img);
      }
      li.append(el("span", "name", item.file.name), el("span", "size", formatSize(item.file.size)));
      const remove = el("button", "icon-btn");
      remove.append(icon("close"));
      remove.type = "button";
      remove.setAttribute("aria-label", `Remove ${item.file.name}`);
      remove.addEventListener("click", () => {
        if (item.preview) URL.revokeObjectURL(item.preview);
        this.files.splice(index, 1);
        this.renderFiles();
      });
      li.append(remove);
      return li;
    }));
  }

  clear() {
    this.input.value = "";
    this.autosize();
    this.files.forEach((item) => item.preview && URL.revokeObjectURL(item.preview));
    this.files = [];
    this.renderFiles();
  }

  async submit() {
    const text = this.input.value;
    if (this.blocked || !text.trim()) return;
    if (text.length > this.limits.maxMessageChars) {
      this.notice(`The message is too long: at most ${this.limits.maxMessageChars.toLocaleString()} characters.`);
      return;
    }
    this.notice("");
    const sent = await this.onSend({ text, files: this.files.slice(), deep: this.deep.checked });
    if (sent) this.clear();
  }
}
