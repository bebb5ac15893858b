// The teacher dashboard: their courses; per course the live state with graphs and chat
// moderation, going live from this browser (golive.js), stream keys with OBS settings,
// resources (files for the course or one of its sessions), schedules, enrollment requests,
// attendance per session, and progress: recordings watched and completion
// (progress_dashboard.js).

import {
  api, copyButton, currentUser, el, header, message, requireSignIn, results, show, when,
} from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { Chat } from "./chat.js";
import { saveDownload } from "./download.js";
import { GoLive } from "./golive.js";
import { showProgress } from "./progress_dashboard.js";
import { courseResources, showResources, uploadResource } from "./resources.js";

header();
const notice = document.getElementById("notice");
const panel = document.getElementById("course-panel");
const GRAPH_POLL_MS = 5_000;
let course = null;
let poll = null;
let chat = null;
let golive = null;

const ENCODER = [
  ["Encoder", "x264 (or the hardware H.264 encoder)"],
  ["Rate control", "CBR, 2500–4500 Kbps for 1280×720 (6000 Kbps for 1920×1080)"],
  ["Keyframe interval", "2 s"],
  ["Profile / tuning", "main or high; no B-frames needed"],
  ["Output", "1280×720 or 1920×1080, 30 fps"],
  ["Audio", "AAC, 128 Kbps, 48 kHz, stereo"],
];

// --- courses ---------------------------------------------------------------------

async function loadCourses() {
  const list = document.getElementById("my-courses");
  const me = currentUser();
  const query = me.role === "teacher" ? `?teacher_id=${me.id}&limit=100` : "?limit=100";
  const courses = results(await api("GET", `/courses/${query}`));
  show(list, courses.length ? courses.map((c) => el("li", {},
    el("a", { href: `/teach?course=${c.id}`, "data-course-id": c.id, onclick: (event) => {
      event.preventDefault();
      history.replaceState(null, "", `/teach?course=${c.id}`);
      select(c);
    } }, c.title), " ", el("span", { class: "meta" }, c.is_live ? "· live now" : ""),
    " ", el("a", { href: `/learn/${c.id}`, class: "meta" }, "course page")))
    : [el("li", { class: "meta" }, "You teach no course yet.")]);
  return courses;
}

function select(c) {
  if (golive && golive.courseId !== c.id) {
    // Switching courses ends a broadcast from this page: ask first.
    if (golive.busy && !confirm("Stop going live from this browser?")) return;
    golive.close();
    golive = null;
  }
  course = c;
  clearInterval(poll);
  if (chat) chat.close();
  chat = null;
  document.getElementById("course-title").textContent = c.title;
  panel.hidden = false;
  loadLive();
  if (!golive) {
    golive = new GoLive(document.getElementById("golive-box"), c.id,
                        { onKeyChange: () => { if (course && course.id === c.id) loadKeys(); } });
  }
  loadKeys();
  loadResources();
  loadSchedules();
  loadRequests();
  loadAttendance();
  showProgress(document.getElementById("progress"), c.id);
}

// --- live: graphs and moderation -------------------------------------------------

async function loadLive() {
  const state = document.getElementById("live-state");
  const graphs = document.getElementById("graphs");
  const moderation = document.getElementById("moderation");
  const series = { bitrate: [], dropped: [], viewers: [] };
  const canvases = {
    bitrate: el("canvas", { id: "graph-bitrate", "aria-label": "Input bitrate (Kbps)" }),
    dropped: el("canvas", { id: "graph-dropped", "aria-label": "Dropped data (bytes)" }),
    viewers: el("canvas", { id: "graph-viewers", "aria-label": "Viewers" }),
  };
  let sessionId = null;

  async function sample() {
    let status;
    try {
      status = await api("GET", `/courses/${course.id}/live-status`);
    } catch (error) {
      message(state, error.message);
      return;
    }
    if (!status.is_live) {
      show(state, el("p", { id: "live-summary" }, "Not live. Stream from OBS with a key below, or go live from this browser."));
      show(graphs);
      show(moderation);
      sessionId = null;
      return;
    }
    if (sessionId !== status.session_id) {
      sessionId = status.session_id;
      Object.values(series).forEach((s) => s.splice(0));
      show(graphs, Object.values(canvases));
      const box = el("div", { class: "chat", id: "chat" });
      show(moderation, box);
      if (course.chat_mode !== "disabled") {
        if (chat) chat.close();
        chat = new Chat(box, sessionId, course.id, { moderator: true });
      }
    }
    const stream = status.stream || {};
    const input = stream.input || {};
    const now = Date.now();
    series.bitrate.push({ t: now, v: input.bitrate_kbps || 0 });
    series.dropped.push({ t: now, v: (stream.worker && stream.worker.dropped_bytes) || 0 });
    // Players watching now (each with its own playback token), as the media server counts.
    series.viewers.push({ t: now, v: stream.viewers || 0 });
    const size = input.width ? `${input.width}×${input.height} ${input.fps || ""} fps` : "";
    show(state, el("p", { id: "live-summary" },
      el("span", { class: "badge live" }, "Live"), ` since ${when(status.since)} `,
      stream.publisher_connected === false ? "· encoder disconnected " : "",
      size ? `· ${size} ${input.video_codec || ""}/${input.audio_codec || ""}` : "",
      " ", el("button", { type: "button", id: "end-live", onclick: endLive }, "End class")));
    lineChart(canvases.bitrate, series.bitrate, "Input Kbps");
    lineChart(canvases.dropped, series.dropped, "Dropped bytes");
    lineChart(canvases.viewers, series.viewers, "Viewers");
  }

  await sample();
  poll = setInterval(sample, GRAPH_POLL_MS);
}

async function endLive() {
  if (!confirm("End the class for everyone?")) return;
  try {
    await api("POST", `/courses/${course.id}/end-live`);
  } catch (error) {
    message(document.getElementById("live-state"), error.message);
  }
}

// --- stream keys -----------------------------------------------------------------

function obsSettings(secret) {
  const rows = [
    ["Service", "Custom…", null],
    ["Server", secret.rtmp_url, secret.rtmp_url],
    ["Stream key", secret.key, secret.key],
  ];
  return el("div", { class: "obs", id: "obs-settings" },
    el("p", {}, "Paste these in OBS → Settings → Stream. The key is shown only now: keep it secret."),
    el("table", { class: "table" }, el("tbody", {}, rows.map(([name, value, copy]) =>
      el("tr", {}, el("th", {}, name), el("td", {}, el("code", { class: "secret" }, value)),
         el("td", {}, copy ? copyButton(copy) : null))))),
    el("p", {}, "Recommended output settings:"),
    el("table", { class: "table" }, el("tbody", {}, ENCODER.map(([name, value]) =>
      el("tr", {}, el("th", {}, name), el("td", {}, value))))));
}

async function loadKeys(secret = null) {
  const box = document.getElementById("keys");
  let keys;
  try {
    keys = results(await api("GET", `/courses/${course.id}/stream-keys`));
  } catch (error) {
    message(box, error.message);
    return;
  }
  const act = (path, verb) => async () => {
    try {
      const answer = await api("POST", path);
      loadKeys(verb === "rotate" ? answer : null);
    } catch (error) {
      message(box, error.message);
    }
  };
  const label = el("input", { id: "key-label", placeholder: "Label (e.g. Studio PC)", "aria-label": "Key label" });
  const form = el("form", { class: "filters", id: "new-key" }, label,
                  el("button", { type: "submit" }, "New stream key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      loadKeys(await api("POST", `/courses/${course.id}/stream-keys`, { label: label.value.trim() }));
    } catch (error) {
      message(box, error.message);
    }
  });
  show(box, secret ? obsSettings(secret) : null,
    el("ul", { class: "plain" }, keys.map((k) => el("li", {},
      el("code", {}, k.key_hint), " ", k.label || "(no label)", " ",
      el("span", { class: "meta" }, k.active ? `last used ${when(k.last_used_at) || "never"}` : "revoked"),
      k.active ? [" ", el("button", { type: "button", class: "small", onclick: act(`/stream-keys/${k.id}/rotate`, "rotate") }, "Rotate"),
                  " ", el("button", { type: "button", class: "small", onclick: act(`/stream-keys/${k.id}/revoke`, "revoke") }, "Revoke")]
        : null))),
    form);
}

// --- resources -------------------------------------------------------------------

async function loadResources() {
  const box = document.getElementById("resources");
  const list = el("div", { id: "resource-files" });
  const status = el("div", { id: "resource-status" });
  let rows;
  let sessions;
  try {
    [rows, sessions] = await Promise.all([
      courseResources(course.id),
      api("GET", `/courses/${course.id}/sessions/?limit=200`).then(results),
    ]);
  } catch (error) {
    message(box, error.message);
    return;
  }
  const titles = new Map(sessions.map((s) => [s.id, s.title]));
  const f = {
    file: el("input", { id: "resource-file", type: "file", required: true, "aria-label": "File" }),
    title: el("input", { id: "resource-title", placeholder: "Title (e.g. Week 1 slides)",
                         "aria-label": "Title" }),
    owner: el("select", { id: "resource-owner", "aria-label": "Attach to" },
      el("option", { value: `/courses/${course.id}` }, "The whole course"),
      sessions.map((s) => el("option", { value: `/sessions/${s.id}` },
                             `${s.title} · ${when(s.start_time)}`))),
  };
  const form = el("form", { class: "filters", id: "new-resource" }, Object.values(f),
                  el("button", { type: "submit" }, "Upload"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [file] = f.file.files;
    if (!file) return;
    const button = form.querySelector("button");
    button.disabled = true;
    message(status, `Uploading ${file.name}…`, "info");
    try {
      await uploadResource(f.owner.value, file, f.title.value.trim());
      show(status);
      loadResources();
    } catch (error) {
      message(status, error.message);
    } finally {
      button.disabled = false;
    }
  });
  const remove = async (r) => {
    if (!confirm(`Delete "${r.title}"?`)) return;
    try {
      await api("DELETE", `/resources/${r.id}`);
      loadResources();
    } catch (error) {
      message(status, error.message);
    }
  };
  const labelled = rows.map((r) => ({
    ...r, title: r.session_id ? `${r.title} (${titles.get(r.session_id) || "a session"})` : r.title,
  }));
  showResources(list, labelled, { id: "resource-list", onDelete: remove });
  show(box, list, form, status);
}

// --- schedules -------------------------------------------------------------------

async function loadSchedules() {
  const box = document.getElementById("schedules");
  let schedules;
  try {
    schedules = results(await api("GET", `/schedules/?course_id=${course.id}`));
  } catch (error) {
    message(box, error.message);
    return;
  }
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const f = {
    title: el("input", { name: "title", placeholder: "Title", required: true, "aria-label": "Title" }),
    start: el("input", { name: "start", type: "datetime-local", required: true, "aria-label": "First class" }),
    minutes: el("input", { name: "minutes", type: "number", min: "1", value: "60", "aria-label": "Minutes" }),
    repeat: el("select", { name: "repeat", "aria-label": "Repeat" },
      el("option", { value: "" }, "Once"), el("option", { value: "FREQ=WEEKLY" }, "Weekly"),
      el("option", { value: "FREQ=DAILY" }, "Daily")),
  };
  const form = el("form", { class: "filters", id: "new-schedule" }, Object.values(f),
                  el("button", { type: "submit" }, "Add schedule"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/schedules/", {
        course_id: course.id, title: f.title.value.trim(), start_time: f.start.value,
        duration_minutes: Number(f.minutes.value), timezone: zone, rrule: f.repeat.value || null,
      });
      loadSchedules();
    } catch (error) {
      message(box, error.message);
    }
  });
  const remove = (s) => async () => {
    if (!confirm(`Delete the schedule "${s.title}" and its future sessions?`)) return;
    try {
      await api("DELETE", `/schedules/${s.id}/`);
      loadSchedules();
    } catch (error) {
      message(box, error.message);
    }
  };
  show(box, el("ul", { class: "plain" }, schedules.map((s) => el("li", {},
    el("strong", {}, s.title), " ",
    el("span", { class: "meta" }, `${s.rrule || "once"} · ${s.duration_minutes} min · next: ${
      s.next_occurrences.length ? when(s.next_occurrences[0].start) : "none"}`),
    " ", el("button", { type: "button", class: "small", onclick: remove(s) }, "Delete")))),
    el("p", { class: "meta" }, `New schedules use your time zone (${zone}).`), form);
}

// --- enrollment requests ---------------------------------------------------------

async function loadRequests() {
  const box = document.getElementById("requests");
  let rows;
  try {
    rows = results(await api("GET", `/courses/${course.id}/enrollments?status=requested`));
  } catch (error) {
    message(box, error.message);
    return;
  }
  const decide = (e, verb) => async () => {
    try {
      await api("POST", `/enrollments/${e.id}/${verb}`);
      loadRequests();
    } catch (error) {
      message(box, error.message);
    }
  };
  show(box, rows.length ? el("ul", { class: "plain", id: "request-list" }, rows.map((e) => el("li", {},
    e.student.display_name || e.student.username, " ",
    el("span", { class: "meta" }, `asked ${when(e.created_at)}`), " ",
    el("button", { type: "button", class: "small", onclick: decide(e, "approve") }, "Approve"), " ",
    el("button", { type: "button", class: "small", onclick: decide(e, "reject") }, "Reject"))))
    : el("p", { class: "meta" }, "No request waiting."));
}

// --- attendance ------------------------------------------------------------------

async function loadAttendance() {
  const box = document.getElementById("attendance");
  let sessions;
  try {
    sessions = results(await api("GET", `/courses/${course.id}/sessions/?status=ended&limit=200`));
  } catch (error) {
    message(box, error.message);
    return;
  }
  if (!sessions.length) {
    show(box, el("p", { class: "meta" }, "No class has ended yet."));
    return;
  }
  const picker = el("select", { id: "attendance-session", "aria-label": "Session" },
    sessions.reverse().map((s) => el("option", { value: s.id }, `${s.title} · ${when(s.started_at || s.start_time)}`)));
  const detail = el("div", {});
  const canvas = el("canvas", { id: "attendance-chart", class: "wide" });
  const csv = el("button", { type: "button", class: "small" }, "Download CSV");
  async function showSession() {
    try {
      const rows = results(await api("GET", `/sessions/${picker.value}/attendance`));
      show(detail, canvas, el("table", { class: "table" },
        el("thead", {}, el("tr", {}, el("th", {}, "Student"), el("th", {}, "Minutes"), el("th", {}, "Present"))),
        el("tbody", {}, rows.map((r) => el("tr", {}, el("td", {}, r.username),
          el("td", {}, String(r.minutes)), el("td", {}, r.present ? "yes" : "no"))))));
      barChart(canvas, rows.map((r) => r.username), rows.map((r) => r.minutes), "Minutes watched");
    } catch (error) {
      message(detail, error.status === 404 ? "Attendance is not available on this server yet." : error.message);
    }
  }
  csv.addEventListener("click", async () => {
    try {
      await saveDownload(`/sessions/${picker.value}/attendance?format=csv`,
                         `attendance-session-${picker.value}.csv`);
    } catch (error) {
      message(detail, error.message);
    }
  });
  picker.addEventListener("change", showSession);
  show(box, el("div", { class: "filters" }, picker, csv), detail);
  showSession();
}

if (requireSignIn()) {
  const me = currentUser();
  if (!me || (me.role !== "teacher" && me.role !== "admin")) {
    message(notice, "This page is for teachers and admins.");
  } else {
    try {
      const courses = await loadCourses();
      const wanted = Number(new URLSearchParams(location.search).get("course"));
      const chosen = courses.find((c) => c.id === wanted) || (courses.length === 1 ? courses[0] : null);
      if (chosen) select(chosen);
    } catch (error) {
      message(notice, error.message);
    }
  }
}
