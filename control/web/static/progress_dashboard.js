// The teacher's progress dashboard for one course: per ended class with a recording, who
// watched what share of it (GET /sessions/{id}/progress/report), and the course's
// completion per student from live attendance and recordings together
// (GET /courses/{id}/completion), with its CSV. Rendered into the container it is given.

import { api, el, message, results, show, when } from "./api.js";
import { saveDownload } from "./download.js";
import { clock } from "./recording_progress.js";

const percent = (share) => `${Math.round(share * 100)}%`;
// A student by display name, with the username that tells two alike apart.
const studentName = (r) => (r.display_name ? `${r.display_name} (${r.username})` : r.username);

// A share as a bar and a number: <progress> needs no inline style (the CSP forbids it).
function shareCell(share, label) {
  return el("td", { class: "share" },
    el("progress", { max: "100", value: String(Math.round(share * 100)), "aria-label": label }),
    " ", el("span", { class: "share-value" }, percent(share)));
}

function watchersTable(rows) {
  if (!rows.length) return el("p", { class: "meta" }, "No student in this course yet.");
  return el("table", { class: "table", id: "progress-watchers" },
    el("thead", {}, el("tr", {}, el("th", {}, "Student"), el("th", {}, "Watched"),
                        el("th", {}, "Last position"), el("th", {}, "Last watched"))),
    el("tbody", {}, rows.map((r) => el("tr", { "data-username": r.username },
      el("td", { class: "name" }, studentName(r)),
      shareCell(r.watched_share, `${studentName(r)} watched ${percent(r.watched_share)}`),
      el("td", { class: "position" }, r.updated_at
        ? `${clock(r.position_seconds)} of ${clock(r.duration_seconds)}` : "not started"),
      el("td", { class: "updated" }, r.updated_at ? when(r.updated_at) : "never")))));
}

function completionTable(rows) {
  if (!rows.length) return el("p", { class: "meta" }, "No student in this course yet.");
  return el("table", { class: "table", id: "progress-completion" },
    el("thead", {}, el("tr", {}, el("th", {}, "Student"), el("th", {}, "Attended live"),
                        el("th", {}, "Watched the recording"), el("th", {}, "Done"),
                        el("th", {}, "Completion"))),
    el("tbody", {}, rows.map((r) => {
      const live = r.sessions.filter((m) => m.attended).length;
      const watched = r.sessions.filter((m) => m.done && !m.attended).length;
      return el("tr", { "data-username": r.username },
        el("td", { class: "name" }, studentName(r)), el("td", { class: "attended" }, String(live)),
        el("td", { class: "watched" }, String(watched)),
        el("td", { class: "done" }, `${r.done} of ${r.sessions_total}`),
        shareCell(r.completion_percent / 100,
                  `${studentName(r)} completed ${r.completion_percent}%`));
    })));
}

async function recordingPart(courseId) {
  const part = el("div", { id: "progress-recordings" });
  const sessions = results(await api("GET", `/courses/${courseId}/sessions/?status=ended&limit=200`))
    .filter((s) => s.recording_url);
  if (!sessions.length) {
    show(part, el("p", { class: "meta" }, "No ended class has a recording yet."));
    return part;
  }
  // Newest first: the class a teacher most likely asks about.
  const picker = el("select", { id: "progress-session", "aria-label": "Recording" },
    sessions.reverse().map((s) => el("option", { value: s.id },
      `${s.title} · ${when(s.started_at || s.start_time)}`)));
  const detail = el("div", {});
  async function showRecording() {
    const chosen = picker.value;
    try {
      const rows = await api("GET", `/sessions/${chosen}/progress/report`);
      if (picker.value === chosen) show(detail, watchersTable(rows));
    } catch (error) {
      message(detail, error.message);
    }
  }
  picker.addEventListener("change", showRecording);
  show(part, el("h4", {}, "Who watched the recordings"), el("div", { class: "filters" }, picker),
       detail);
  await showRecording();
  return part;
}

async function completionPart(courseId) {
  const part = el("div", { id: "progress-course" });
  const rows = await api("GET", `/courses/${courseId}/completion`);
  const status = el("div", {});
  const csv = el("button", { type: "button", class: "small", id: "completion-csv" },
                 "Download completion CSV");
  csv.addEventListener("click", async () => {
    try {
      await saveDownload(`/courses/${courseId}/completion?format=csv`,
                         `course-${courseId}-completion.csv`);
    } catch (error) {
      message(status, error.message);
    }
  });
  show(part, el("h4", {}, "Completion"),
    el("p", { class: "meta" }, "A class counts as done when the student attended it live or"
       + " watched enough of its recording."),
    completionTable(rows), el("div", { class: "filters" }, csv), status);
  return part;
}

// Shows the course's progress in `container`; a later call (another course) wins.
let shown = 0;
export async function showProgress(container, courseId) {
  const mine = ++shown;
  message(container, "Loading progress…", "info");
  try {
    const parts = await Promise.all([recordingPart(courseId), completionPart(courseId)]);
    if (mine === shown) show(container, parts);
  } catch (error) {
    if (mine === shown) message(container, error.message);
  }
}
