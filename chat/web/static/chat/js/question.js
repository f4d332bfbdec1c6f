// What a paused run asks its user (docs/API.md, "Runs that ask you"), as a small form under the
// answer: the fields of agno's get_user_input, or Confirm / Cancel for a tool that needs
// confirmation. Answering sends the run's requirements back (a `continue` frame); the run then
// goes on in the same answer. Text only, never markup: labels come from the model.

import { el } from "./view.js";

const FIELD_MAX = 10000;

// A tool call the user is asked to confirm, in words.
function describeCall(tool) {
  const args = tool.tool_args || {};
  if (tool.tool_name === "start_deep_research") {
    return `Start a deep research on: ${args.topic || "this question"}? It takes a few minutes and costs more than a normal answer.`;
  }
  const shown = Object.entries(args).map(([key, value]) => `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
  return `Run ${tool.tool_name}${shown.length ? ` (${shown.join(", ")})` : ""}?`;
}

function inputFor(field, id) {
  const type = (field.field_type || "str").toLowerCase();
  const input = el("input", "question-input");
  input.id = id;
  input.name = field.name;
  if (type === "bool") {
    input.type = "checkbox";
  } else if (type === "int" || type === "float") {
    input.type = "number";
    input.step = type === "int" ? "1" : "any";
  } else {
    input.type = "text";
    input.maxLength = FIELD_MAX;
  }
  return input;
}

function valueOf(field, input) {
  const type = (field.field_type || "str").toLowerCase();
  if (type === "bool") return input.checked;
  if (type === "int" || type === "float") return input.value === "" ? null : Number(input.value);
  return input.value;
}

export class Question {
  // `requirements`: the TeamRunPaused event's; `onAnswer(answers)` sends them (the page's socket).
  constructor(requirements, onAnswer) {
    this.requirements = requirements || [];
    this.onAnswer = onAnswer;
    this.node = el("form", "question");
    this.node.setAttribute("aria-label", "Cirkelline asks you");
    this.fields = [];
    const confirmations = [];
    let index = 0;
    for (const requirement of this.requirements) {
      const tool = requirement.tool_execution || {};
      const schema = requirement.user_input_schema || tool.user_input_schema;
      if (tool.requires_confirmation) {
        confirmations.push(requirement);
        this.node.append(el("p", "question-text", describeCall(tool)));
      } else if (schema && schema.length) {
        for (const field of schema) {
          const id = `q-${requirement.id}-${index++}`;
          const label = el("label", "question-label", field.description || field.name);
          label.htmlFor = id;
          const input = inputFor(field, id);
          this.fields.push({ requirement, field, input });
          const row = el("div", "question-field");
          row.append(label, input);
          this.node.append(row);
        }
      }
    }
    this.confirmations = confirmations;
    const actions = el("div", "question-actions");
    if (confirmations.length) {
      this.confirm = el("button", "btn small primary", "Confirm");
      this.confirm.type = "submit";
      this.cancel = el("button", "btn small", "Cancel");
      this.cancel.type = "button";
      this.cancel.addEventListener("click", () => this.submit(false));
      actions.append(this.confirm, this.cancel);
    } else {
      this.confirm = el("button", "btn small primary", "Send");
      this.confirm.type = "submit";
      actions.append(this.confirm);
    }
    this.note = el("span", "question-note");
    this.note.setAttribute("role", "status");
    actions.append(this.note);
    this.node.append(actions);
    this.node.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit(true);
    });
  }

  // The answers as the continue frame takes them: each requirement's id with its decision.
  answers(confirmed) {
    const byId = new Map();
    for (const requirement of this.confirmations) byId.set(requirement.id, { id: requirement.id, confirmation: confirmed });
    for (const { requirement, field, input } of this.fields) {
      const entry = byId.get(requirement.id) || { id: requirement.id, values: {} };
      entry.values = entry.values || {};
      entry.values[field.name] = valueOf(field, input);
      byId.set(requirement.id, entry);
    }
    return [...byId.values()];
  }

  submit(confirmed) {
    const missing = this.fields.find(({ field, input }) => input.type !== "checkbox" && input.value.trim() === ""
      && (field.field_type || "str") === "str");
    if (confirmed && missing) {
      this.error("Please fill in every field.");
      missing.input.focus();
      return;
    }
    this.busy(true);
    if (!this.onAnswer(this.answers(confirmed))) this.busy(false);
  }

  busy(on) {
    for (const control of this.node.querySelectorAll("input, button")) control.disabled = on;
    this.note.textContent = on ? "Sending…" : "";
  }

  error(text) {
    this.busy(false);
    this.note.textContent = text;
  }

  // The run went on with the answers: the form stays as a record, read-only.
  answered() {
    this.busy(true);
    this.node.dataset.state = "answered";
    this.note.textContent = "Answered";
  }

  focus() {
    const first = this.fields.length ? this.fields[0].input : this.confirm;
    first.focus();
  }
}
