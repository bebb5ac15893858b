// The class chat: a WebSocket per live session, messages shown as plain text, and for
// the course's staff a delete button per message and a ban per author. The socket opens
// with a one-time ticket (POST /sessions/{id}/chat-ticket), never with the API token.

import { api, currentUser, el, show } from "./api.js";

// Close codes the server uses: 4403, access withdrawn (reconnecting would be refused).
const ACCESS_GONE = 4403;

export class Chat {
  constructor(container, sessionId, courseId, { moderator = false } = {}) {
    this.container = container;
    this.sessionId = sessionId;
    this.courseId = courseId;
    this.moderator = moderator;
    this.socket = null;
    this.closed = false;
    this.backoff = 1000;
    this.list = el("ol", { class: "chat-messages", id: "chat-messages", "aria-live": "polite" });
    this.input = el("input", { id: "chat-input", maxlength: "1000", autocomplete: "off",
                               placeholder: "Say something…", "aria-label": "Message" });
    this.note = el("p", { class: "chat-note", id: "chat-note", role: "status" });
    const form = el("form", { class: "chat-form", id: "chat-form" }, this.input,
                    el("button", { type: "submit" }, "Send"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    show(container, el("h2", {}, "Chat"), this.list, currentUser() ? form : null, this.note);
    if (!currentUser()) this.note.textContent = "Sign in to chat.";
    else this.connect();
  }

  async connect() {
    let ticket;
    try {
      ({ ticket } = await api("POST", `/sessions/${this.sessionId}/chat-ticket`));
    } catch (error) {
      if (this.closed) return;
      this.note.textContent = error.message;
      // Refused (signed out, removed, chat off): asking again will not help.
      if (error.status >= 400 && error.status < 500) return;
      this.retry();
      return;
    }
    if (this.closed) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/sessions/${this.sessionId}/chat?ticket=${
      encodeURIComponent(ticket)}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      this.backoff = 1000;
      this.container.dataset.connected = "true";
      this.note.textContent = "";
    };
    socket.onmessage = (event) => this.receive(JSON.parse(event.data));
    socket.onclose = (event) => {
      this.container.dataset.connected = "false";
      if (this.closed) return;
      if (event.code === ACCESS_GONE) {
        this.note.textContent = event.reason || "You no longer have access to this chat.";
        return;
      }
      this.note.textContent = "Chat disconnected; reconnecting…";
      this.retry();
    };
  }

  retry() {
    setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, 30_000);
  }

  receive(event) {
    if (event.type === "message") this.add(event);
    else if (event.type === "deleted") {
      const item = this.list.querySelector(`[data-id="${Number(event.id)}"]`);
      if (item) item.remove();
    } else if (event.type === "error") {
      this.note.textContent = event.message;
      this.note.dataset.code = event.code;
    }
  }

  add(m) {
    const time = new Date(m.sent_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const item = el("li", { "data-id": m.id, class: "chat-message" },
                    el("span", { class: "chat-time" }, time), " ",
                    el("strong", { class: "chat-user" }, m.user.username), " ",
                    el("span", { class: "chat-text" }, m.text));
    if (this.moderator) {
      item.append(" ",
        el("button", { type: "button", class: "small chat-delete", onclick: () => this.remove(m.id) },
           "Delete"),
        el("button", { type: "button", class: "small chat-ban",
                       onclick: () => this.ban(m.user) }, "Ban"));
    }
    this.list.append(item);
    this.list.scrollTop = this.list.scrollHeight;
  }

  send() {
    const text = this.input.value.trim();
    if (!text || !this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    this.socket.send(JSON.stringify({ type: "message", text }));
    this.input.value = "";
  }

  async remove(id) {
    try {
      await api("DELETE", `/chat/messages/${id}`);
    } catch (error) {
      this.note.textContent = error.message;
    }
  }

  async ban(user) {
    if (!confirm(`Ban ${user.username} from this course's chat?`)) return;
    try {
      await api("POST", `/courses/${this.courseId}/chat-bans`, { user_id: user.id });
      this.note.textContent = `${user.username} may no longer chat here.`;
    } catch (error) {
      this.note.textContent = error.message;
    }
  }

  close() {
    this.closed = true;
    if (this.socket) this.socket.close();
  }
}
