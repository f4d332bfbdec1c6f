// The chat websocket: the login cookie authenticates it; it reconnects with jittered exponential
// back-off (1 s, 2 s, 4 s ... 30 s) and hands every frame to the page.

const MAX_DELAY = 30000;

export function backoff(attempt) {
  const base = Math.min(MAX_DELAY, 1000 * 2 ** attempt);
  return Math.round(base / 2 + (Math.random() * base) / 2);
}

export class ChatSocket {
  constructor(path, { onFrame, onState }) {
    this.path = path;
    this.onFrame = onFrame;
    this.onState = onState;
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}${this.path}`);
    this.ws = ws;
    this.ready = false;
    this.onState("connecting");
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "ready") {
        this.ready = true;
        this.attempt = 0;
        this.onState("open");
      }
      this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.ready = false;
      if (event.code === 4401) {
        this.stopped = true; // the login ended: reconnecting cannot help
        this.onState("unauthenticated");
        return;
      }
      const delay = backoff(this.attempt++);
      this.onState("reconnecting", delay);
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  reconnectNow() {
    if (this.stopped || this.ws || !this.timer) return;
    this.connect();
  }

  send(frame) {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
