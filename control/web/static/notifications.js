// The signed-in person's notifications: newest first, unread ones marked, each read with
// one click (or all at once), and the channels they want to be told through.
import { api, el, header, message, refreshUnread, requireSignIn, show, when } from "/assets/api.js";

header();
const list = document.getElementById("notifications");
const notice = document.getElementById("notice");

function item(n) {
  const unread = n.read_at === null;
  const title = n.link ? el("a", { href: n.link }, n.title) : n.title;
  return el("li", { "data-id": n.id, "data-read": String(!unread) },
    el("h2", {}, title),
    el("p", {}, n.body),
    el("small", {}, when(n.created_at)), " ",
    unread ? el("button", { type: "button", class: "mark-read", onclick: () => markRead(n.id) },
                "Mark read") : null);
}

async function load() {
  try {
    const data = await api("GET", "/me/notifications?limit=50");
    show(list, data.results.length ? data.results.map(item) : el("li", {}, "Nothing yet."));
  } catch (error) {
    message(notice, error.message);
  }
}

async function markRead(id) {
  try {
    await api("POST", `/me/notifications/${id}/read`);
  } catch (error) {
    message(notice, error.message);
  }
  await Promise.all([load(), refreshUnread()]);
}

async function channels() {
  const inApp = document.getElementById("channel-in-app");
  const email = document.getElementById("channel-email");
  const prefs = await api("GET", "/me/notification-preferences");
  inApp.checked = prefs.in_app;
  email.checked = prefs.email;
  document.getElementById("email-address").textContent =
    prefs.email_address ? `(${prefs.email_address})` : "(no address on file)";
  for (const box of [inApp, email]) {
    box.addEventListener("change", async () => {
      try {
        await api("PUT", "/me/notification-preferences", { [box.name]: box.checked });
        message(notice, "Saved.", "info");
      } catch (error) {
        message(notice, error.message);
      }
    });
  }
}

document.getElementById("read-all").addEventListener("click", async () => {
  await api("POST", "/me/notifications/read-all");
  await Promise.all([load(), refreshUnread()]);
});

if (requireSignIn()) {
  load();
  channels().catch((error) => message(notice, error.message));
}
