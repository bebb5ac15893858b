// The course page: what the course is, its schedule in the viewer's time zone, how to
// join it, the live player (or a countdown to the next class), the chat while live, the
// course's files (its own and its sessions', downloaded through signed links) and the
// recordings of past sessions.

import {
  ACCESS_LABELS, api, countdown, currentUser, el, header, message, results, show, when,
} from "./api.js";
import { Chat } from "./chat.js";
import { Player } from "./player.js";
import { courseResources, showResources } from "./resources.js";

header();
const courseId = Number(location.pathname.split("/")[2]);
const notice = document.getElementById("notice");
const live = document.getElementById("live");
const join = document.getElementById("join");
const user = currentUser();
const LIVE_POLL_MS = 15_000;
let course = null;
let player = null;
let chat = null;
let liveSession = null;
let ticker = null;

function price(c) {
  if (!c.price_cents) return "";
  return new Intl.NumberFormat(undefined, { style: "currency", currency: c.currency || "USD" })
    .format(c.price_cents / 100);
}

function describe(c) {
  document.title = `${c.title}: Academia Live`;
  document.getElementById("title").textContent = c.title;
  const parts = [
    `Taught by ${c.teacher.display_name || c.teacher.username}`, c.category.name,
    ACCESS_LABELS[c.access_level] || c.access_level, price(c),
    c.seats_left > 0 ? `${c.seats_left} seats left` : "Full (waitlist)",
  ];
  document.getElementById("meta").textContent = parts.filter(Boolean).join(" · ");
  document.getElementById("description").textContent = c.description || "No description yet.";
  document.getElementById("course").hidden = false;
}

function isStaff() {
  return user && (user.role === "admin" || user.id === course.teacher.id);
}

// --- live ------------------------------------------------------------------------

async function refreshLive() {
  let status;
  try {
    status = await api("GET", `/courses/${courseId}/live-status`);
  } catch {
    return; // keep what is shown; the next poll tries again
  }
  if (status.is_live) {
    if (liveSession === status.session_id) return;
    liveSession = status.session_id;
    clearInterval(ticker);
    const playerBox = el("div", { id: "player", class: "player" });
    const chatBox = el("aside", { id: "chat", class: "chat" });
    show(live, el("h2", {}, el("span", { class: "badge live" }, "Live"), " ",
                  status.session.title), el("div", { class: "live-grid" }, playerBox, chatBox));
    player = new Player(playerBox, liveSession, { expect: "live", onEnded: ended });
    player.start();
    if (course.chat_mode !== "disabled") {
      chat = new Chat(chatBox, liveSession, courseId, { moderator: isStaff() });
    } else {
      chatBox.remove();
    }
    return;
  }
  if (liveSession !== null) ended();
  notLive(status.next_session);
}

function ended() {
  if (player) player.stop();
  if (chat) chat.close();
  player = chat = null;
  liveSession = null;
  loadSessions();
}

function notLive(next) {
  clearInterval(ticker);
  const box = el("div", { id: "not-live", class: "not-live", "data-state": "not-live" });
  const line = el("p", { class: "countdown", id: "countdown" });
  show(box, el("p", {}, "The class is not live."), next ? line : null,
       next ? el("p", { class: "meta" }, `${next.title}: ${when(next.start_time)}`) : null);
  if (next) {
    const tick = () => {
      line.textContent = new Date(next.start_time) > Date.now()
        ? `Starts in ${countdown(next.start_time)}` : "Starting soon…";
    };
    tick();
    ticker = setInterval(tick, 1000);
  }
  show(live, box);
}

// --- joining ---------------------------------------------------------------------

const STATUS_TEXT = {
  active: "You are enrolled.",
  requested: "Your request is waiting for the teacher's approval.",
  pending_payment: "Your place is reserved until payment completes.",
  waitlisted: "The course is full: you are on the waitlist.",
  rejected: "Your request was declined.",
  removed: "You were removed from this course.",
  completed: "You completed this course.",
  refunded: "Your payment was refunded.",
};

async function enroll(body) {
  try {
    await api("POST", `/courses/${courseId}/enroll`, body);
    await loadJoin();
    await refreshLive();
  } catch (error) {
    message(join, error.message);
  }
}

async function loadJoin() {
  if (!user) {
    const next = encodeURIComponent(location.pathname);
    show(join, el("p", {}, el("a", { href: `/signin?next=${next}` }, "Sign in"),
                  " to enroll and to see the schedule and recordings."));
    return;
  }
  if (isStaff()) {
    show(join, el("p", {}, el("a", { href: `/teach?course=${courseId}` }, "Manage this course")));
    return;
  }
  if (user.role !== "student") {
    show(join);
    return;
  }
  let mine = null;
  try {
    mine = results(await api("GET", "/me/enrollments")).find((e) => e.course_id === courseId);
  } catch (error) {
    message(join, error.message);
    return;
  }
  const holding = mine && ["active", "requested", "pending_payment", "waitlisted"]
    .includes(mine.status);
  const parts = [];
  if (mine) parts.push(el("p", { id: "enrollment-status" }, STATUS_TEXT[mine.status] || mine.status));
  if (!holding) {
    const level = course.access_level;
    if (level === "restricted") {
      const code = el("input", { id: "invite-code", placeholder: "Invite code",
                                 "aria-label": "Invite code", required: true });
      const form = el("form", { class: "filters", id: "invite-form" }, code,
                      el("button", { type: "submit" }, "Join with code"));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        enroll({ invite_code: code.value.trim() });
      });
      parts.push(form);
    } else {
      const label = { private: "Request to join", paid: `Enroll and pay ${price(course)}` }[level]
        || "Enroll";
      parts.push(el("button", { type: "button", id: "enroll", onclick: () => enroll() }, label));
    }
  } else if (mine.status === "pending_payment") {
    parts.push(el("p", { class: "meta" },
                  "Complete the payment with the provider; this page updates once it is received."));
  }
  show(join, parts);
}

// --- schedule and recordings -----------------------------------------------------

function sessionsItem(s) {
  return el("li", { "data-session-id": s.id },
            el("strong", {}, s.title), " ", el("span", { class: "meta" },
            `${when(s.start_time)} · ${s.duration_minutes} min`,
            s.status === "live" ? " · live now" : ""));
}

async function playRecording(s) {
  const box = document.getElementById("recording-player");
  show(box, el("h3", {}, s.title), el("div", { id: "replay", class: "player" }));
  const replay = new Player(box.lastChild, s.id, { expect: "recording" });
  await replay.start();
  box.scrollIntoView({ behavior: "smooth", block: "start" });
}

async function download(s) {
  try {
    const grant = await api("GET", `/sessions/${s.id}/playback`);
    if (grant.download_url) location.href = grant.download_url;
  } catch (error) {
    message(document.getElementById("recording-player"), error.message);
  }
}

// Posters need a playback grant each: only the most recent recordings get one.
const POSTERS = 12;

async function showPoster(s, img) {
  try {
    const grant = await api("GET", `/sessions/${s.id}/playback`);
    if (!grant.poster_url) return;
    img.addEventListener("load", () => { img.hidden = false; });
    img.src = grant.poster_url;
  } catch {
    // No poster is no loss: the entry still replays and downloads.
  }
}

function recordingItem(s, index) {
  const poster = el("img", { class: "poster", alt: "", width: "160", height: "90" });
  poster.hidden = true;
  if (index < POSTERS) showPoster(s, poster);
  return el("li", { class: "recording", "data-session-id": s.id }, poster,
    el("strong", {}, s.title), " ", el("span", { class: "meta" }, when(s.started_at || s.start_time)),
    " ", el("button", { type: "button", class: "replay", onclick: () => playRecording(s) }, "Replay"),
    " ", el("button", { type: "button", class: "download", onclick: () => download(s) }, "Download"));
}

async function loadSessions() {
  const schedule = document.getElementById("sessions");
  const recordings = document.getElementById("recording-list");
  if (!user) {
    show(schedule, el("li", { class: "meta" }, "Sign in to see the schedule."));
    show(recordings, el("li", { class: "meta" }, "Sign in to see recordings."));
    return;
  }
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  try {
    const now = new Date().toISOString();
    const [upcoming, past] = await Promise.all([
      api("GET", `/courses/${courseId}/sessions/?from=${encodeURIComponent(now)}&limit=20`),
      api("GET", `/courses/${courseId}/sessions/?status=ended&limit=200`),
    ]);
    const coming = results(upcoming).filter((s) => s.status === "scheduled" || s.status === "live");
    show(schedule, coming.length ? coming.map(sessionsItem)
      : [el("li", { class: "meta" }, "No upcoming session.")],
         el("li", { class: "meta" }, `Times are shown in your time zone (${zone}).`));
    const done = results(past).filter((s) => s.recording_url).reverse();
    show(recordings, done.length ? done.map(recordingItem)
      : [el("li", { class: "meta" }, "No recording yet.")]);
  } catch (error) {
    message(schedule, error.message);
  }
}

// --- resources -------------------------------------------------------------------

async function loadResources() {
  const box = document.getElementById("resource-files");
  if (!user && course.access_level !== "public") {
    show(box, el("p", { class: "meta" }, "Sign in to see the course's files."));
    return;
  }
  try {
    const [rows, sessions] = await Promise.all([
      courseResources(courseId),
      api("GET", `/courses/${courseId}/sessions/?limit=200`).then(results).catch(() => []),
    ]);
    const titles = new Map(sessions.map((s) => [s.id, s.title]));
    showResources(box, rows.map((r) => ({
      ...r, title: r.session_id ? `${r.title} (${titles.get(r.session_id) || "a class"})` : r.title,
    })), { id: "resource-list" });
  } catch (error) {
    // Those who may not see the course's content see why, not its files.
    show(box, el("p", { class: "meta", id: "resources-closed" },
                 error.status === 403 ? "The files are for the course's students." : error.message));
  }
}

try {
  course = await api("GET", `/courses/${courseId}/`);
  describe(course);
  await Promise.all([refreshLive(), loadJoin(), loadSessions(), loadResources()]);
  setInterval(refreshLive, LIVE_POLL_MS);
} catch (error) {
  message(notice, error.status === 404 ? "There is no such course." : error.message);
}
