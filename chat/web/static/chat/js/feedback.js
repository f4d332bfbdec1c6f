// Thumbs up / down under a finished answer, with an optional comment: the user's feedback on that
// run, given, changed or taken back (docs/API.md, "Feedback on answers"). Text only, never markup.

import { api } from "./api.js";
import { el, icon } from "./view.js";

const COMMENT_MAX = 2000;
const LABELS = { up: "Good answer", down: "Bad answer" };

export class FeedbackBar {
  constructor(runId) {
    this.runId = runId;
    this.rating = null;
    this.comment = "";
    this.busy = false;

    this.node = el("div", "feedback");
    this.node.dataset.rating = "";
    this.buttons = {};
    for (const rating of ["up", "down"]) {
      const button = el("button", `icon-btn rate ${rating}`);
      button.type = "button";
      button.title = LABELS[rating];
      button.setAttribute("aria-label", LABELS[rating]);
      button.setAttribute("aria-pressed", "false");
      button.append(icon("thumb"));
      button.addEventListener("click", () => this.choose(rating));
      this.buttons[rating] = button;
    }
    this.editLink = el("button", "link-btn edit-comment", "Add a comment");
    this.editLink.type = "button";
    this.editLink.hidden = true;
    this.editLink.addEventListener("click", () => this.openComment());
    this.note = el("span", "feedback-note");
    this.note.setAttribute("role", "status");

    this.form = el("form", "feedback-comment");
    this.form.hidden = true;
    this.input = el("textarea", "feedback-input");
    this.input.rows = 2;
    this.input.maxLength = COMMENT_MAX;
    this.input.placeholder = "What was good or wrong? (optional)";
    this.input.setAttribute("aria-label", "Comment on this answer");
    const save = el("button", "btn small primary", "Send");
    save.type = "submit";
    const cancel = el("button", "btn small", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", () => this.closeComment());
    this.form.append(this.input, save, cancel);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send(this.rating, this.input.value.trim(), { closeForm: true });
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.closeComment();
    });

    this.saved = el("p", "feedback-text");
    this.saved.hidden = true;
    const row = el("div", "feedback-row");
    row.append(this.buttons.up, this.buttons.down, this.editLink, this.note);
    this.node.append(row, this.saved, this.form);
  }

  // What the server holds (GET /sessions/{id}/feedback, or a POST's answer); null: none.
  show(feedback) {
    this.rating = feedback ? feedback.rating : null;
    this.comment = feedback ? feedback.comment || "" : "";
    this.node.dataset.rating = this.rating || "";
    for (const [rating, button] of Object.entries(this.buttons)) {
      button.setAttribute("aria-pressed", String(rating === this.rating));
    }
    this.editLink.hidden = !this.rating || !this.form.hidden;
    this.editLink.textContent = this.comment ? "Edit comment" : "Add a comment";
    this.saved.textContent = this.comment ? `Your comment: ${this.comment}` : "";
    this.saved.hidden = !this.comment;
  }

  // Choosing the rating shown again takes the feedback back; another rating gives or changes it
  // (the comment stays) and offers the comment box.
  choose(rating) {
    if (this.busy) return;
    if (rating === this.rating) {
      this.withdraw();
      return;
    }
    this.send(rating, this.comment, { openForm: !this.comment });
  }

  async send(rating, comment, { openForm = false, closeForm = false } = {}) {
    if (!rating) return;
    this.busy = true;
    this.note.textContent = "";
    try {
      this.show(await api.giveFeedback(this.runId, rating, comment));
      this.note.textContent = "Thanks for your feedback.";
      if (closeForm) this.closeComment();
      if (openForm) this.openComment();
    } catch (error) {
      this.note.textContent = `Not saved: ${error.detail || error}`;
    } finally {
      this.busy = false;
    }
  }

  async withdraw() {
    this.busy = true;
    this.note.textContent = "";
    try {
      await api.removeFeedback(this.runId);
      this.show(null);
      this.closeComment();
      this.note.textContent = "Feedback removed.";
    } catch (error) {
      this.note.textContent = `Not removed: ${error.detail || error}`;
    } finally {
      this.busy = false;
    }
  }

  openComment() {
    this.input.value = this.comment;
    this.form.hidden = false;
    this.editLink.hidden = true;
    this.input.focus();
  }

  closeComment() {
    this.form.hidden = true;
    this.editLink.hidden = !this.rating;
  }
}
