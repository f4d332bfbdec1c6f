// The conversation on screen: user messages, and for each run an answer that streams in, with
// its delegations ("Cirkelline → Research Specialist: <task>", member output collapsible),
// reasoning (collapsible), errors with a retry action, and its tokens and duration.

import { renderMarkdown } from "./markdown.js";
import { Question } from "./question.js";

const DELEGATE = new Set(["delegate_task_to_member", "delegate_task_to_members"]);
// The memory tools (chat/agents/memory.py): shown as a line each, so the user sees when they are used.
const MEMORY_TOOLS = {
  update_user_memory: (args) => ["Updating memory", args.task || ""],
  search_memories: (args) => ["Looking in memories", [args.query, (args.topics || []).join(", ")].filter(Boolean).join(" · ")],
  // The documents tool (chat/agents/knowledge.py): its line, then the passages it found as sources.
  search_my_documents: (args) => ["Searching your documents", args.query || ""],
};

// "Sources: lease.pdf (chunk 3, p. 2) · ..." from a document search's result (JSON), or "".
function documentSources(result) {
  let found;
  try {
    found = JSON.parse(result);
  } catch {
    return "";
  }
  const seen = (found && Array.isArray(found.results) ? found.results : []).map((hit) => {
    const where = [`chunk ${hit.chunk}`, hit.page ? `p. ${hit.page}` : ""].filter(Boolean).join(", ");
    return `${hit.document} (${where})`;
  });
  return seen.length ? `Sources: ${[...new Set(seen)].join(" · ")}` : "";
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function formatSize(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} B`;
}

const ICONS = {
  pencil: "M4 20h4L19 9l-4-4L4 16v4z",
  trash: "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13",
  close: "M6 6l12 12M18 6L6 18",
  clip: "M16 7l-7.5 7.5a2.5 2.5 0 0 0 3.5 3.5l7.5-7.5a4.5 4.5 0 0 0-6.4-6.4l-7.5 7.5a6.5 6.5 0 0 0 9.2 9.2L20 15.6",
  // A thumb up; the thumb down is the same icon turned over (chat.css).
  thumb: "M7 11v9H4v-9h3zM7 11l4-8c1.5 0 2.5 1 2.2 2.6L12.6 9H19a2 2 0 0 1 2 2.3l-1.2 7A2 2 0 0 1 17.8 20H7",
};

// A stroked SVG icon (no emoji: a system may lack the font).
// "0.00367250" -> "0.0036725"; "2.00000000" -> "2" (the server sends exact decimal strings).
function trimDecimal(text) {
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "ico");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

export { el, formatSize, icon };

const STATUS_TEXT = {
  paused: "Waiting for your answer",
  cancelled: "Stopped",
  timed_out: "Timed out",
  rate_limited: "Rate limited",
  error: "Failed",
};

const STATE_TEXT = { done: "done", failed: "failed", stalled: "not answering…" };

class Delegation {
  constructor(turn, memberId, memberName, task) {
    this.memberId = memberId;
    this.runId = null;
    this.text = "";
    this.node = el("details", "delegation");
    this.node.dataset.member = memberId;
    this.node.dataset.state = "working";
    const summary = el("summary");
    const route = el("span", "route", `${turn.conversation.teamName} → ${memberName}`);
    this.taskNode = el("span", "task", task ? `: ${task}` : "");
    this.stateNode = el("span", "state", "working…");
    summary.append(route, this.taskNode, this.stateNode);
    this.output = el("div", "member-output markdown");
    this.node.append(summary, this.output);
    turn.delegations.append(this.node);
  }

  append(text) {
    this.text += text;
    renderMarkdown(this.output, this.text);
  }

  discard(characters) {
    this.text = this.text.slice(0, Math.max(0, this.text.length - characters));
    renderMarkdown(this.output, this.text);
  }

  done(state = "done", text) {
    if (text !== undefined && text !== null && !this.text) this.append(String(text));
    this.node.dataset.state = state;
    this.stateNode.textContent = STATE_TEXT[state] || state;
  }
}

export class Turn {
  constructor(conversation, { joined = false } = {}) {
    this.conversation = conversation;
    this.runId = null;
    this.answer = "";
    this.reasoningText = "";
    this.members = [];
    this.joined = joined;
    this.finished = false;
    this.frame = 0;
    this.lastSeq = -1; // the last event (its seq) shown: a resumed stream continues after it
    this.userNode = null; // the message it answers
    this.question = null; // what a paused run asks (chat/js/question.js)

    this.node = el("article", "msg assistant");
    this.node.dataset.status = "pending";
    const avatar = el("div", "avatar", "C");
    avatar.setAttribute("aria-hidden", "true");
    const body = el("div", "body");
    this.delegations = el("div", "delegations");
    this.reasoning = el("details", "reasoning");
    this.reasoning.hidden = true;
    this.reasoning.append(el("summary", "", "Reasoning"));
    this.reasoningBody = el("div", "reasoning-text");
    this.reasoning.append(this.reasoningBody);
    this.answerNode = el("div", "answer markdown");
    // Announced to screen readers; aria-busy holds the announcement until the answer is complete.
    this.answerNode.setAttribute("aria-live", "polite");
    this.answerNode.setAttribute("aria-busy", "true");
    this.typing = el("div", "typing", joined ? "Answer in progress (opened mid-answer)…" : "Thinking…");
    this.errorNode = el("div", "run-error");
    this.errorNode.setAttribute("role", "alert");
    this.errorNode.hidden = true;
    this.meta = el("footer", "meta");
    body.append(this.delegations, this.reasoning, this.answerNode, this.typing, this.errorNode, this.meta);
    this.body = body;
    this.feedback = null; // the thumbs under a finished answer (chat/js/feedback.js, given by the page)
    this.node.append(avatar, body);
  }

  // The socket dropped while this answer streamed; it resumes when the socket is back.
  reconnecting(on) {
    if (this.finished) return;
    this.node.dataset.reconnecting = on ? "true" : "false";
    if (on) {
      this.typing.dataset.before = this.typing.textContent;
      this.typing.textContent = "Reconnecting…";
      this.typing.hidden = false;
    } else if (this.typing.dataset.before !== undefined) {
      this.typing.textContent = this.typing.dataset.before;
      this.typing.hidden = Boolean(this.answer);
      delete this.typing.dataset.before;
    }
  }

  bind(runId) {
    this.runId = runId;
    this.node.dataset.runId = runId;
    this.node.dataset.status = "running";
  }

  scheduleRender() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      renderMarkdown(this.answerNode, this.answer);
      this.conversation.stickToBottom();
    });
  }

  delegation(memberId, task) {
    const name = this.conversation.members[memberId] || memberId;
    const item = new Delegation(this, memberId, name, task);
    this.members.push(item);
    this.typing.textContent = `${name} is working…`;
    return item;
  }

  memberOf(event) {
    let item = this.members.find((d) => d.runId === event.run_id);
    if (!item) item = this.members.find((d) => !d.runId && d.memberId === event.agent_id);
    if (!item) item = this.delegation(event.agent_id, "");
    item.runId = event.run_id;
    return item;
  }

  onEvent(event) {
    const name = event.event;
    const isLeader = event.run_id === this.runId;
    if (name === "TeamRunContent" && isLeader) {
      if (event.reasoning_content) this.addReasoning(event.reasoning_content);
      if (event.content) {
        this.answer += event.content;
        this.typing.hidden = true;
        this.scheduleRender();
      }
    } else if (name === "TeamRunContentDiscarded" && isLeader) {
      this.answer = this.answer.slice(0, Math.max(0, this.answer.length - event.discarded_characters));
      this.scheduleRender();
    } else if (name === "TeamToolCallStarted" && event.tool && DELEGATE.has(event.tool.tool_name)) {
      const args = event.tool.tool_args || {};
      if (event.tool.tool_name === "delegate_task_to_member") this.delegation(args.member_id, args.task);
    } else if (name === "TeamToolCallStarted" && event.tool && MEMORY_TOOLS[event.tool.tool_name] && isLeader) {
      this.memoryUse(event.tool);
    } else if (name === "TeamToolCallCompleted" && event.tool && MEMORY_TOOLS[event.tool.tool_name] && isLeader) {
      const line = this.delegations.querySelector(`.memory-use[data-call="${CSS.escape(event.tool.tool_call_id || "")}"]`);
      if (line) line.dataset.state = "done";
      this.sources(event.tool);
    } else if (name === "RunStarted" && event.agent_id) {
      this.memberOf(event);
    } else if (name === "RunContent" && event.agent_id) {
      if (event.reasoning_content) this.addReasoning(event.reasoning_content);
      if (event.content) this.memberOf(event).append(event.content);
    } else if (name === "RunContentDiscarded" && event.agent_id) {
      this.memberOf(event).discard(event.discarded_characters);
    } else if (name === "RunCompleted" && event.agent_id) {
      this.memberOf(event).done("done", event.content);
      this.typing.textContent = "Thinking…";
    } else if (name === "RunError" && event.agent_id) {
      this.memberOf(event).done("failed");
    } else if (name === "DelegationFailureDetected" && event.kind === "member_stalled") {
      // The member has sent nothing for CIRKELLINE_MEMBER_STALL_SECONDS; the run goes on, and a
      // later RunCompleted / RunError sets the delegation's state again.
      const item = this.members.find((d) => d.memberId === event.member && d.node.dataset.state === "working");
      if (item) item.done("stalled");
    } else if (/Reasoning/.test(name) && (event.reasoning_content || event.content)) {
      this.addReasoning(event.reasoning_content || event.content);
    } else if (name === "TeamRunPaused" && isLeader) {
      this.ask(event.requirements);
    } else if (name === "TeamRunContinued" && isLeader) {
      if (this.question) this.question.answered();
      this.node.dataset.status = "running";
      this.typing.textContent = "Thinking…";
      this.typing.hidden = false;
    } else if (name === "TeamRunCompleted" && isLeader) {
      if (typeof event.content === "string") this.answer = event.content;
      this.scheduleRender();
    } else if (name === "TeamRunError" && isLeader) {
      this.showError(event.content || "The run failed.");
    }
  }

  // The run asks its user (TeamRunPaused): the question as a small form; answering continues the run.
  ask(requirements) {
    if (this.question) this.question.node.remove();
    this.question = new Question(requirements, (answers) => this.conversation.onContinue(this, answers));
    this.typing.hidden = true;
    this.body.insertBefore(this.question.node, this.errorNode);
    this.conversation.stickToBottom(true);
  }

  // A memory tool call of the leader's: what it did, as text.
  memoryUse(tool, state = "working") {
    const [what, detail] = MEMORY_TOOLS[tool.tool_name](tool.tool_args || {});
    const line = el("div", "memory-use");
    line.dataset.call = tool.tool_call_id || "";
    line.dataset.state = state;
    line.append(el("span", "route", what), el("span", "task", detail ? `: ${detail}` : ""));
    this.delegations.append(line);
    this.conversation.onMemoryUse(tool.tool_name);
  }

  // The passages a document search found, under its line (text only).
  sources(tool) {
    if (tool.tool_name !== "search_my_documents" || typeof tool.result !== "string") return;
    const text = documentSources(tool.result);
    if (text) this.delegations.append(el("p", "doc-sources", text));
  }

  addReasoning(text) {
    this.reasoning.hidden = false;
    this.reasoningText += text;
    this.reasoningBody.textContent = this.reasoningText;
  }

  showError(detail, retry) {
    this.errorNode.replaceChildren(el("span", "", detail));
    if (retry) {
      const button = el("button", "btn small", "Retry");
      button.type = "button";
      button.addEventListener("click", retry);
      this.errorNode.append(button);
    }
    this.errorNode.hidden = false;
  }

  setMeta(parts) {
    this.meta.textContent = parts.filter(Boolean).join(" · ");
  }

  // run_finished: the outcome, tokens of the leader and every member, the cost when the run's
  // models have a price (an exact decimal string, shown with its trailing zeros dropped), and
  // the duration.
  finish(frame, retry) {
    // Paused: the answer waits for its user (its question is shown); the continuation goes on here.
    this.finished = frame.status !== "paused";
    this.typing.hidden = true;
    this.members.forEach((d) => d.node.dataset.state === "working" && d.done("done"));
    this.node.dataset.status = frame.status;
    this.answerNode.setAttribute("aria-busy", "false");
    renderMarkdown(this.answerNode, this.answer);
    if (frame.status !== "completed" && frame.status !== "cancelled" && frame.status !== "paused") {
      this.showError(frame.detail || "The run failed.", retry);
    }
    const tokens = frame.tokens ? frame.tokens.total_tokens : null;
    this.setMeta([
      STATUS_TEXT[frame.status],
      tokens !== null ? `${tokens.toLocaleString()} tokens` : null,
      typeof frame.cost === "string" ? `$${trimDecimal(frame.cost)}` : null,
      `${(frame.duration_ms / 1000).toFixed(1)} s`,
      frame.saved === false ? "not saved yet" : null,
    ]);
    if (this.finished) this.conversation.answered(this);
    else if (this.question) this.question.focus();
  }

  // The page's part under a finished answer (its feedback bar), added once.
  attach(part) {
    this.feedback = part;
    this.body.append(part.node);
  }

  // A failure before the run started (refused by the server, or never sent).
  fail(detail, retry) {
    this.finished = true;
    this.typing.hidden = true;
    this.node.dataset.status = "refused";
    this.answerNode.setAttribute("aria-busy", "false");
    this.showError(detail, retry);
  }

  // A stored run of the session's history (GET /sessions/{id}/runs).
  fromHistory(run, memberRuns) {
    this.bind(run.run_id);
    for (const tool of run.tools || []) {
      if (tool && MEMORY_TOOLS[tool.tool_name]) {
        this.memoryUse(tool, "done");
        this.sources(tool);
      }
    }
    for (const member of memberRuns) {
      const item = this.delegation(member.agent_id, member.run_input);
      item.runId = member.run_id;
      item.done(member.status === "ERROR" ? "failed" : "done", member.content);
    }
    this.typing.hidden = true;
    this.answer = typeof run.content === "string" ? run.content : run.content ? JSON.stringify(run.content) : "";
    renderMarkdown(this.answerNode, this.answer);
    this.answerNode.setAttribute("aria-busy", "false");
    const status = (run.status || "").toLowerCase();
    this.node.dataset.status = status === "error" ? "error" : status || "completed";
    const tokens = [run, ...memberRuns].reduce((sum, r) => sum + ((r.metrics || {}).total_tokens || 0), 0);
    const duration = (run.metrics || {}).duration;
    this.setMeta([
      STATUS_TEXT[status],
      tokens ? `${tokens.toLocaleString()} tokens` : null,
      typeof duration === "number" ? `${duration.toFixed(1)} s` : null,
    ]);
    if (status === "paused" && run.requirements) {
      this.answer = ""; // agno's note that it waits, not an answer
      renderMarkdown(this.answerNode, this.answer);
      this.ask(run.requirements);
      return;
    }
    this.finished = true;
    this.conversation.answered(this);
  }
}

// How close to the top of the conversation (px) older messages start loading.
const OLDER_MARGIN = 200;

// A message of the user's, with the names of the files it carried.
function userMessage(text, files = []) {
  const node = el("article", "msg user");
  node.append(el("div", "bubble", text));
  if (files.length) {
    const list = el("ul", "sent-files");
    for (const file of files) {
      const item = el("li", `file ${file.kind || ""}`);
      item.append(icon("clip"), ` ${file.name}`);
      list.append(item);
    }
    node.append(list);
  }
  return node;
}

export class Conversation {
  constructor(root, { members, teamName }, { onMemoryUse, onAnswer, onOlder, onContinue } = {}) {
    this.root = root;
    // A paused answer's question answered: (turn, answers) -> whether they were sent.
    this.onContinue = onContinue || (() => false);
    this.members = members;
    this.teamName = teamName;
    this.onMemoryUse = onMemoryUse || (() => {});
    this.onAnswer = onAnswer || (() => {});
    this.welcome = root.querySelector("#welcome");
    this.turns = new Map();
    // Above the oldest message shown, while the session has older ones: they load when the
    // conversation is scrolled to its top (or with the button, for keyboards and screen readers).
    this.older = el("div", "older");
    this.older.hidden = true;
    this.olderButton = el("button", "btn small", "Show earlier messages");
    this.olderButton.type = "button";
    this.olderNote = el("span", "older-note");
    this.older.append(this.olderButton, this.olderNote);
    const wantOlder = () => !this.older.hidden && this.older.dataset.state !== "loading" && (onOlder || (() => {}))();
    this.olderButton.addEventListener("click", wantOlder);
    root.addEventListener("scroll", () => {
      if (root.scrollTop < OLDER_MARGIN && this.older.dataset.state !== "failed") wantOlder();
    }, { passive: true });
    root.prepend(this.older);
  }

  // Whether older messages exist, and the state of loading them ("idle", "loading", "failed").
  setOlder(more, state = "idle", note = "") {
    this.older.hidden = !more;
    this.older.dataset.state = state;
    this.olderButton.disabled = state === "loading";
    this.olderButton.textContent = state === "failed" ? "Try again" : "Show earlier messages";
    this.olderNote.textContent = state === "loading" ? "Loading earlier messages…" : note;
  }

  // Whether the conversation is too short to scroll: older messages then load without a scroll.
  fitsOnScreen() {
    return this.root.scrollHeight - this.root.clientHeight < OLDER_MARGIN;
  }

  // The team runs shown from the history.
  historyCount() {
    return this.root.querySelectorAll(".msg.assistant[data-history]").length;
  }

  // A turn's answer has ended (streamed, or from the history): the page may add its part once.
  answered(turn) {
    if (turn.runId && !turn.feedback) this.onAnswer(turn);
  }

  clear() {
    this.root.replaceChildren(this.older, this.welcome);
    this.setOlder(false);
    this.welcome.hidden = false;
    this.turns.clear();
  }

  stickToBottom(force = false) {
    const root = this.root;
    if (force || root.scrollHeight - root.scrollTop - root.clientHeight < 160) root.scrollTop = root.scrollHeight;
  }

  addUser(text, files = []) {
    this.welcome.hidden = true;
    const node = userMessage(text, files);
    this.root.append(node);
    this.stickToBottom(true);
    return node;
  }

  addTurn(options) {
    this.welcome.hidden = true;
    const turn = new Turn(this, options);
    this.root.append(turn.node);
    this.stickToBottom(true);
    return turn;
  }

  register(turn, runId) {
    turn.bind(runId);
    this.turns.set(runId, turn);
  }

  // The session's latest stored runs (a page of GET /sessions/{id}/runs); `keep`: answers still
  // streaming, shown after them as they were.
  showHistory(runs, keep = []) {
    const live = new Set(keep.map((turn) => turn.runId));
    this.clear();
    this.root.append(this.historyNodes(runs.filter((run) => !live.has(run.run_id))));
    for (const turn of keep) {
      if (turn.userNode) this.root.append(turn.userNode);
      this.root.append(turn.node);
      this.turns.set(turn.runId, turn);
    }
    this.welcome.hidden = !this.turns.size;
    // At once, not smoothly: a scroll passing near the top on its way down would load older messages.
    this.root.scrollTo({ top: this.root.scrollHeight, behavior: "instant" });
  }

  // Older stored runs (the page before the oldest shown), put above it without moving what is on
  // screen: the distance to the bottom is kept. The turns added.
  prependHistory(runs) {
    const root = this.root;
    const fromBottom = root.scrollHeight - root.scrollTop;
    const before = new Set(this.turns.keys());
    const nodes = this.historyNodes(runs.filter((run) => !this.turns.has(run.run_id)));
    this.welcome.after(nodes);
    // "instant": the conversation scrolls smoothly (chat.css), which would animate this jump back.
    root.scrollTo({ top: root.scrollHeight - fromBottom, behavior: "instant" });
    return [...this.turns.values()].filter((turn) => !before.has(turn.runId));
  }

  // The messages of stored runs: each team run's message and its answer, with the member runs it
  // delegated to.
  historyNodes(runs) {
    const fragment = document.createDocumentFragment();
    const members = new Map();
    for (const run of runs) {
      if (run.agent_id && run.parent_run_id) {
        if (!members.has(run.parent_run_id)) members.set(run.parent_run_id, []);
        members.get(run.parent_run_id).push(run);
      }
    }
    for (const run of runs) {
      if (run.agent_id) continue;
      const files = ["images", "audio", "videos", "files"].flatMap((kind) =>
        (run[kind] || []).map((f) => ({ name: f.filename || f.name || kind, kind })));
      fragment.append(userMessage(run.run_input || "", files));
      const turn = new Turn(this);
      turn.node.dataset.history = "";
      fragment.append(turn.node);
      turn.fromHistory(run, members.get(run.run_id) || []);
      this.turns.set(run.run_id, turn);
    }
    if (runs.length) this.welcome.hidden = true;
    return fragment;
  }
}
