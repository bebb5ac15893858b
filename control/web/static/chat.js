// The class chat: a WebSocket per live session, messages shown as plain text, and for
// the course's staff a delete button per message and a ban per author.

import { api, currentUser, el, show, token } from "./api.js";

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

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/sessions/${this.sessionId}/chat?token=${
      encodeURIComponent(token())}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      this.backoff = 1000;
      this.container.dataset.connected = "true";
      this.note.textContent = "";
    };
    socket.onmessage = (event) => this.receive(JSON.parse(event.data));
    socket.onclose = () => {
      this.container.dataset.connected = "false";
      if (this.closed) return;
      this.note.textContent = "Chat disconnected; reconnecting…";
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 30_000);
    };
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
