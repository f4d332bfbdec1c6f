// The chat page: one session on screen (its URL is /c/<session id>), runs over the websocket,
// history and the chat list over the HTTP API. Protocol: docs/API.md, "Websocket".
// A dropped socket (network blip, a worker restarting) reconnects and resumes the live answers
// after the last `seq` each one rendered: the runs went on meanwhile, nothing is shown twice.

import { api, ApiError } from "./api.js";
import { Composer } from "./composer.js";
import { FeedbackBar } from "./feedback.js";
import { DocumentsDialog } from "./documents.js";
import { MemoriesDialog } from "./memories.js";
import { SessionList } from "./sessions.js";
import { SettingsDialog } from "./settings.js";
import { ChatSocket } from "./socket.js";
import { Conversation } from "./view.js";

const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);

const state = {
  sessionId: sessionFromPath(),
  pending: new Map(), // ref -> {turn, text, deep, files}: runs sent, not yet started
  running: new Map(), // run id -> session id: live runs of this user that this page knows of
  refs: 0,
  everReady: false,
  loadToken: 0,
  listToken: 0,
  older: null, // the `before` cursor of the page of history above the oldest message shown
  feedback: new Map(), // run id -> the user's rating of it (GET /sessions/{id}/feedback)
};
// Team runs per page of history: the latest load first, older ones as the user scrolls up.
const HISTORY_PAGE = 20;

const memories = new MemoriesDialog();
const documents = new DocumentsDialog();
const conversation = new Conversation($("messages"), config, {
  onMemoryUse: () => memories.refresh(),
  onAnswer: (turn) => turn.attach(new FeedbackBar(turn.runId)),
  onOlder: () => loadOlder(),
  onContinue: continueRun,
});
const list = new SessionList($("sessions"), $("sessions-empty"), {
  onOpen: (id) => openSession(id, { push: true }),
  onRename: renameSession,
  onDelete: deleteSession,
});
const composer = new Composer({
  form: $("composer"), input: $("input"), fileInput: $("file-input"), list: $("attachments"),
  notice: $("notice"), deep: $("deep-research"), config, onSend: send,
});
const socket = new ChatSocket(config.wsPath, { onFrame, onState });
const settings = new SettingsDialog(config, { onSaved: () => announce("Settings saved.") });

function sessionFromPath() {
  const match = location.pathname.match(/^\/c\/([^/]+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

function banner(text, html) {
  const node = $("banner");
  if (html) node.replaceChildren(...html);
  else node.textContent = text || "";
  node.hidden = !text && !html;
}

function announce(text) {
  $("status-live").textContent = text;
}

// -- the connection ------------------------------------------------------------------------

function onState(kind, delay) {
  const conn = $("conn");
  conn.dataset.state = kind;
  if (kind === "open") {
    conn.textContent = "Connected";
    banner("");
  } else if (kind === "connecting") {
    conn.textContent = "Connecting…";
  } else if (kind === "reconnecting") {
    conn.textContent = "Offline";
    banner(`Connection lost. Reconnecting in ${Math.ceil(delay / 1000)} s…`);
    for (const [ref, entry] of state.pending) {
      if (entry.continuing) entry.turn.question.error("The connection dropped; send your answer again.");
      else entry.turn.fail("The connection dropped before the answer started.", () => retry(entry));
      state.pending.delete(ref);
    }
    // Live answers stay on screen: the runs go on at the server, and are resumed on reconnect.
    for (const turn of liveTurns()) turn.reconnecting(true);
    updateStop();
  } else if (kind === "unauthenticated") {
    conn.textContent = "Logged out";
    const link = document.createElement("a");
    link.href = `/login/?next=${encodeURIComponent(location.pathname)}`;
    link.textContent = "Log in again";
    banner(null, [document.createTextNode("Your login has ended. "), link]);
  }
}

function onFrame(frame) {
  switch (frame.type) {
    case "ready":
      if (state.everReady) {
        // After a drop: resume each live answer after the last event it showed; what else
        // happened meanwhile is in the API.
        watch(Object.fromEntries(liveTurns().map((turn) => [turn.runId, turn.lastSeq])));
        refreshSessions();
        if (state.sessionId) loadHistory(state.sessionId);
      } else {
        watch();
      }
      state.everReady = true;
      break;
    case "watching":
      onWatching(frame);
      break;
    case "run_started":
      onRunStarted(frame);
      break;
    case "events":
      onEvents(frame);
      break;
    case "run_finished":
      onRunFinished(frame);
      break;
    case "presence":
      showPresence(frame);
      break;
    case "session_renamed":
      onSessionRenamed(frame);
      break;
    case "error":
      onError(frame);
      break;
    default:
      break;
  }
}

function watch(after) {
  const frame = { type: "watch", session_id: state.sessionId, ref: "watch" };
  if (after && Object.keys(after).length) frame.after = after;
  socket.send(frame);
}

// Answers on screen still streaming (this session's).
function liveTurns() {
  return [...conversation.turns.values()].filter((turn) => !turn.finished && state.running.has(turn.runId));
}

// The server streams these runs to this socket now. A live answer it does not resume ended
// while the page was away, longer ago than the server keeps its events: the stored run has it.
function onWatching(frame) {
  if (frame.session_id !== state.sessionId || !frame.runs) return;
  const resumed = new Set(frame.runs);
  const lost = liveTurns().filter((turn) => !resumed.has(turn.runId));
  for (const turn of liveTurns()) turn.reconnecting(false);
  if (!lost.length) return;
  for (const turn of lost) {
    state.running.delete(turn.runId);
    turn.finished = true;
  }
  updateStop();
  loadHistory(state.sessionId);
}

// A session got a new name: the model's title after its first answer, or a rename elsewhere.
function onSessionRenamed(frame) {
  list.setName(frame.session_id, frame.session_name);
  if (frame.session_id === state.sessionId) setTitle(frame.session_name);
  // And from the API: a list read before the name was stored (the one asked for when the answer
  // ended) must not bring the old name back, and a chat not listed yet appears.
  refreshSessions();
}

function showPresence(frame) {
  const node = $("presence");
  node.hidden = !(frame.session_id === state.sessionId && frame.sockets > 1);
  node.textContent = `Open in ${frame.sockets} windows`;
}

// -- runs ----------------------------------------------------------------------------------

function turnFor(frame) {
  let turn = conversation.turns.get(frame.run_id);
  if (!turn && frame.session_id === state.sessionId) {
    // A run started elsewhere (another tab, the API, or before this page loaded): the server
    // replays it from its start.
    const userNode = frame.message !== undefined ? conversation.addUser(frame.message, frame.files || []) : null;
    turn = conversation.addTurn({ joined: Boolean(frame.joined) || frame.type !== "run_started" });
    turn.userNode = userNode;
    conversation.register(turn, frame.run_id);
  }
  return turn;
}

function onRunStarted(frame) {
  const mine = frame.ref !== undefined && state.pending.get(frame.ref);
  state.running.set(frame.run_id, frame.session_id);
  if (mine) {
    state.pending.delete(frame.ref);
    conversation.register(mine.turn, frame.run_id);
    if (mine.sessionId === null && state.sessionId === null) {
      state.sessionId = frame.session_id; // the new chat now has a URL of its own
      history.replaceState({}, "", `/c/${encodeURIComponent(frame.session_id)}`);
      list.addProvisional(frame.session_id, frame.message.split("\n")[0].slice(0, 100));
      setTitle(frame.message.split("\n")[0].slice(0, 100));
      watch();
    }
  } else {
    turnFor(frame);
  }
  announce("Cirkelline is answering…");
  updateStop();
}

function onEvents(frame) {
  if (frame.session_id !== state.sessionId) return;
  if (!state.running.has(frame.run_id)) state.running.set(frame.run_id, frame.session_id);
  const turn = turnFor(frame);
  for (const event of frame.events) {
    if (event.seq <= turn.lastSeq) continue; // already shown (a resumed stream never repeats one)
    turn.lastSeq = event.seq;
    turn.onEvent(event);
  }
  updateStop();
}

function onRunFinished(frame) {
  state.running.delete(frame.run_id);
  updateStop();
  refreshSessions();
  refreshSpend();
  if (frame.session_id !== state.sessionId) return;
  const turn = turnFor(frame);
  if (!turn || turn.finished) return;
  const again = turn.sentText !== undefined ? () => retry({ text: turn.sentText, deep: turn.sentDeep }) : null;
  turn.finish(frame, again);
  announce(frame.status === "completed" ? "Answer complete." : `The answer ended: ${frame.status}.`);
}

function onError(frame) {
  const entry = frame.ref !== undefined && state.pending.get(frame.ref);
  if (frame.status === 401) onState("unauthenticated");
  // Not watching a chat (say, one another window just started) only costs its live copy.
  if (frame.ref === "watch") return;
  if (entry && entry.continuing) {
    // The answers were refused (the run expired, was answered elsewhere, a budget): said on the form.
    state.pending.delete(frame.ref);
    entry.turn.question.error(frame.detail);
    return;
  }
  if (entry) {
    state.pending.delete(frame.ref);
    const wait = frame.retry_after ? ` (try again in ${Math.ceil(frame.retry_after)} s)` : "";
    entry.turn.fail(`${frame.detail}${wait}`, frame.status >= 500 || frame.status === 429 ? () => retry(entry) : null);
    return;
  }
  composer.notice(frame.detail);
}

function updateStop() {
  const live = [...state.running.values()].some((sessionId) => sessionId === state.sessionId);
  $("stop").hidden = !live;
  $("send").hidden = live;
  composer.blocked = live;
}

$("stop").addEventListener("click", () => {
  for (const [runId, sessionId] of state.running) {
    if (sessionId === state.sessionId) socket.send({ type: "cancel", run_id: runId });
  }
});

async function send({ text, files, deep }) {
  if (!socket.ready) {
    composer.notice("Not connected right now; your message is kept here. Reconnecting…");
    socket.reconnectNow();
    return false;
  }
  let ids = [];
  if (files.length) {
    try {
      ids = (await api.upload(files.map((item) => item.file))).files.map((file) => file.id);
    } catch (error) {
      composer.notice(error instanceof ApiError ? error.detail : String(error));
      return false;
    }
  }
  const ref = `r${++state.refs}`;
  const userNode = conversation.addUser(text, files.map((item) => ({ name: item.file.name, kind: item.kind })));
  const turn = conversation.addTurn();
  turn.userNode = userNode;
  turn.sentText = text;
  turn.sentDeep = deep;
  const frame = { type: "run", ref, message: text, deep_research: deep, files: ids };
  if (state.sessionId) frame.session_id = state.sessionId;
  const entry = { turn, text, deep, sessionId: state.sessionId };
  state.pending.set(ref, entry);
  if (!socket.send(frame)) {
    state.pending.delete(ref);
    turn.fail("Not connected: the message was not sent.", () => retry(entry));
  }
  return true;
}

// A paused answer's question answered (chat/js/question.js): the run goes on in the same answer.
function continueRun(turn, answers) {
  if (!socket.ready) {
    turn.question.error("Not connected right now; try again in a moment.");
    socket.reconnectNow();
    return false;
  }
  const ref = `r${++state.refs}`;
  state.pending.set(ref, { turn, continuing: true });
  if (!socket.send({ type: "continue", ref, run_id: turn.runId, requirements: answers })) {
    state.pending.delete(ref);
    return false;
  }
  return true;
}

function retry(entry) {
  send({ text: entry.text, files: [], deep: entry.deep });
}

// -- sessions ------------------------------------------------------------------------------

function setTitle(name) {
  $("title").textContent = name || "New chat";
  document.title = name ? `${name} · Cirkelline` : "Cirkelline";
}

async function refreshSessions() {
  const token = ++state.listToken;
  try {
    const sessions = (await api.sessions()).data;
    if (token !== state.listToken) return; // a later refresh was asked for: its answer is newer
    list.render(sessions);
    list.setCurrent(state.sessionId);
    if (state.sessionId) setTitle(list.nameOf(state.sessionId));
  } catch (error) {
    if (error.status === 401) onState("unauthenticated");
  }
}

// This month's spend (UTC calendar month so far), from GET /usage: text only, never markup.
function dollars(cost) {
  const value = Number(cost);
  if (value > 0 && value < 0.01) return "< $0.01";
  return `$${value.toFixed(2)}`;
}

async function refreshSpend() {
  const today = new Date().toISOString().slice(0, 10);
  let usage;
  try {
    usage = await api.usage(`${today.slice(0, 8)}01`, today);
  } catch {
    return; // unobtrusive: the chat works without it
  }
  const totals = usage.totals;
  const parts = [];
  if (totals.cost !== null) parts.push(dollars(totals.cost));
  if (totals.unpriced_tokens) parts.push(`${totals.unpriced_tokens.toLocaleString("en-US")} tokens not priced`);
  if (!parts.length) parts.push(dollars(0));
  const node = $("spend");
  node.textContent = `This month: ${parts.join(" + ")}`;
  node.title = `${totals.runs} runs from ${usage.from} to ${usage.to} (UTC)` +
    (totals.cost !== null ? `; exactly $${totals.cost} ${usage.currency}` : "");
  node.hidden = false;
}

// The latest runs of the session (as many as were on screen, when it is shown again after a
// reconnect), then older ones on scroll (loadOlder).
async function loadHistory(sessionId) {
  const token = ++state.loadToken;
  // (Opening a chat clears the conversation first: then this is a first page.)
  const limit = Math.min(100, Math.max(HISTORY_PAGE, conversation.historyCount()));
  try {
    // The ratings given to its answers come alongside; without them the chat still shows.
    const [page, feedback] = await Promise.all([api.runs(sessionId, { limit }),
      api.sessionFeedback(sessionId).catch(() => ({ data: [] }))]);
    if (token !== state.loadToken) return; // another session was opened meanwhile
    state.feedback = new Map(feedback.data.map((item) => [item.run_id, item]));
    conversation.showHistory(page.runs, liveTurns()); // answers still streaming stay, after the history
    showFeedback(conversation.turns.values());
    setOlder(page.next);
  } catch (error) {
    if (token !== state.loadToken) return;
    const live = liveTurns();
    if (error.status === 404 && live.length) {
      conversation.showHistory([], live); // a new chat: nothing stored until its first answer ends
      return;
    }
    conversation.clear();
    if (error.status === 404) composer.notice("This chat does not exist (or is not yours).");
    else if (error.status === 401) onState("unauthenticated");
    else composer.notice(`The chat could not be loaded: ${error.detail}`);
  }
}

function showFeedback(turns) {
  for (const turn of turns) {
    const item = state.feedback.get(turn.runId);
    if (item && turn.feedback) turn.feedback.show(item);
  }
}

// More history above: a chat too short to scroll loads it at once (no scroll would ask for it).
function setOlder(cursor) {
  state.older = cursor;
  conversation.setOlder(Boolean(cursor));
  if (cursor && conversation.fitsOnScreen()) loadOlder();
}

// The page of history before the oldest message shown, put above it (the view does not move).
async function loadOlder() {
  const token = state.loadToken;
  const before = state.older;
  if (!before) return;
  conversation.setOlder(true, "loading");
  let page;
  try {
    page = await api.runs(state.sessionId, { limit: HISTORY_PAGE, before });
  } catch (error) {
    if (token !== state.loadToken) return;
    if (error.status === 401) onState("unauthenticated");
    conversation.setOlder(true, "failed", `Earlier messages could not be loaded: ${error.detail}`);
    return;
  }
  if (token !== state.loadToken || before !== state.older) return; // another chat, or a reload
  showFeedback(conversation.prependHistory(page.runs));
  setOlder(page.next);
}

function openSession(sessionId, { push }) {
  if (push && sessionId !== state.sessionId) {
    history.pushState({}, "", sessionId ? `/c/${encodeURIComponent(sessionId)}` : "/");
  }
  state.sessionId = sessionId;
  state.loadToken++;
  conversation.clear();
  composer.notice("");
  list.setCurrent(sessionId);
  setTitle(sessionId ? list.nameOf(sessionId) : null);
  $("presence").hidden = true;
  updateStop();
  closeSidebar();
  watch();
  if (sessionId) loadHistory(sessionId);
  $("input").focus();
}

async function renameSession(session, name) {
  try {
    await api.rename(session.session_id, name);
  } catch (error) {
    composer.notice(`The chat could not be renamed: ${error.detail}`);
  }
  await refreshSessions();
}

async function deleteSession(session) {
  if (!window.confirm(`Delete “${session.session_name || "Untitled chat"}”? This cannot be undone.`)) return;
  try {
    await api.remove(session.session_id);
  } catch (error) {
    composer.notice(`The chat could not be deleted: ${error.detail}`);
  }
  if (session.session_id === state.sessionId) openSession(null, { push: true });
  await refreshSessions();
}

// -- layout --------------------------------------------------------------------------------

function closeSidebar() {
  document.body.classList.remove("sidebar-open");
  $("scrim").hidden = true;
  $("open-sidebar").setAttribute("aria-expanded", "false");
}

$("open-sidebar").addEventListener("click", () => {
  document.body.classList.add("sidebar-open");
  $("scrim").hidden = false;
  $("open-sidebar").setAttribute("aria-expanded", "true");
});
$("close-sidebar").addEventListener("click", closeSidebar);
$("scrim").addEventListener("click", closeSidebar);
$("new-chat").addEventListener("click", () => openSession(null, { push: true }));
$("open-settings").addEventListener("click", () => settings.open());
$("open-memories").addEventListener("click", () => memories.open());
$("open-documents").addEventListener("click", () => documents.open());
$("settings-memories").addEventListener("click", () => {
  $("settings").close();
  memories.open();
});
window.addEventListener("popstate", () => openSession(sessionFromPath(), { push: false }));
for (const chip of document.querySelectorAll(".suggestion")) {
  chip.addEventListener("click", () => {
    $("input").value = chip.textContent;
    composer.autosize();
    $("input").focus();
  });
}

refreshSessions();
refreshSpend();
openSession(state.sessionId, { push: false });
socket.connect();
