// The JSON API from the browser: the bearer token in localStorage, errors as messages,
// and the few DOM helpers every page shares (user text only ever goes in textContent).

const TOKEN_KEY = "academia.token";
const USER_KEY = "academia.user";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Reading localStorage throws where the browser keeps storage from a page framed by
// another site (the embeddable player, third-party storage blocked): signed out, then.
function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

export function token() {
  return stored(TOKEN_KEY);
}

export function currentUser() {
  const raw = stored(USER_KEY);
  return raw ? JSON.parse(raw) : null;
}

export function remember(answer) {
  localStorage.setItem(TOKEN_KEY, answer.token);
  localStorage.setItem(USER_KEY, JSON.stringify(answer.user));
}

export function forget() {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(USER_KEY);
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached; check your connection.");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401 && t) forget(); // expired or revoked: sign in again
    throw new ApiError(response.status, error.code || "http_" + response.status,
                       error.message || response.statusText || "request failed");
  }
  return data;
}

export const results = (data) => (Array.isArray(data) ? data : (data && data.results) || []);

// el("a", {href: "/"}, "text", child...): strings become text nodes, never HTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function show(container, ...children) {
  container.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

export function message(container, text, kind = "error") {
  show(container, el("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text));
}

// Dates in the viewer's own time zone, with the zone named.
const dateFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "short", year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", timeZoneName: "short",
});
export const when = (iso) => (iso ? dateFormat.format(new Date(iso)) : "");

export function countdown(iso) {
  let seconds = Math.max(0, Math.round((new Date(iso) - Date.now()) / 1000));
  const days = Math.floor(seconds / 86400);
  seconds -= days * 86400;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const pad = (n) => String(n).padStart(2, "0");
  return (days ? `${days}d ` : "") + `${pad(hours)}:${pad(minutes)}:${pad(seconds)}`;
}

export const ACCESS_LABELS = {
  public: "Open to all", private: "On approval", paid: "Paid", restricted: "Invite only",
};

// The header every page shows: where to go, and who is signed in.
export function header() {
  const nav = document.getElementById("nav");
  if (!nav) return;
  const user = currentUser();
  const links = [el("a", { href: "/", class: "brand" }, "Academia Live")];
  if (user && (user.role === "teacher" || user.role === "admin")) {
    links.push(el("a", { href: "/teach" }, "Teach"));
  }
  if (user && user.role === "admin") links.push(el("a", { href: "/admin" }, "Admin"));
  if (user) {
    links.push(el("a", { href: "/notifications", id: "notifications-link" }, "Notifications",
                  el("span", { id: "unread", class: "badge", hidden: true }, "")));
    links.push(el("span", { class: "who", id: "who" }, user.display_name || user.username));
    links.push(el("button", { type: "button", id: "signout", onclick: signOut }, "Sign out"));
  } else {
    const next = encodeURIComponent(location.pathname + location.search);
    links.push(el("a", { href: `/signin?next=${next}`, id: "signin-link" }, "Sign in"));
    links.push(el("a", { href: "/register" }, "Register"));
  }
  show(nav, links);
  if (user) watchUnread();
}

// The unread count in the header, kept fresh while the page is open (one poll per page).
const UNREAD_POLL_MS = 10000;
let unreadTimer = null;

export async function refreshUnread() {
  const badge = document.getElementById("unread");
  if (!badge || !token()) return;
  try {
    const data = await api("GET", "/me/notifications?limit=1");
    badge.textContent = data.unread ? String(data.unread) : "";
    badge.hidden = !data.unread;
    badge.setAttribute("aria-label", `${data.unread} unread`);
  } catch {
    // A failed poll keeps the last count; the next one tries again.
  }
}

function watchUnread() {
  refreshUnread();
  if (unreadTimer === null) unreadTimer = setInterval(refreshUnread, UNREAD_POLL_MS);
}

async function signOut() {
  try {
    await api("POST", "/auth/logout");
  } catch {
    // The token may already be dead; forgetting it is what matters.
  }
  forget();
  location.href = "/";
}

export function requireSignIn() {
  if (token()) return true;
  location.href = `/signin?next=${encodeURIComponent(location.pathname + location.search)}`;
  return false;
}

// Copies text and says so on the button.
export function copyButton(text, label = "Copy") {
  const button = el("button", { type: "button", class: "copy" }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy";
    }
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}
