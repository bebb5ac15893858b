// The catalog: active courses, filtered by category and searched, each with its
// teacher, access level, seats left and next session.

import { ACCESS_LABELS, api, el, header, message, results, show, when } from "./api.js";

header();
const list = document.getElementById("courses");
const notice = document.getElementById("notice");
const more = document.getElementById("more");
const form = document.getElementById("filters");
const search = document.getElementById("search");
const category = document.getElementById("category");
let next = null;

async function loadCategories() {
  try {
    const data = await api("GET", "/categories/");
    category.append(...results(data).map((c) => el("option", { value: c.id }, c.name)));
  } catch {
    // The catalog works without the filter.
  }
  const params = new URLSearchParams(location.search);
  search.value = params.get("q") || "";
  category.value = params.get("category_id") || "";
}

function card(course, status) {
  const nextSession = status && status.next_session;
  const seats = course.seats_left > 0 ? `${course.seats_left} seats left` : "Full (waitlist)";
  return el("li", { class: "card", "data-course-id": course.id },
    el("h2", {}, el("a", { href: `/learn/${course.id}` }, course.title)),
    status && status.is_live ? el("span", { class: "badge live" }, "Live now") : null,
    el("p", { class: "meta" },
       `${course.teacher.display_name || course.teacher.username} · ${course.category.name}`),
    el("p", { class: "meta" },
       `${ACCESS_LABELS[course.access_level] || course.access_level} · ${seats}`),
    el("p", { class: "meta" },
       nextSession ? `Next: ${when(nextSession.start_time)}` : "No session scheduled"));
}

async function load(append = false) {
  const params = new URLSearchParams();
  if (search.value.trim()) params.set("q", search.value.trim());
  if (category.value) params.set("category_id", category.value);
  const url = append && next ? next : `/courses/?${params}`;
  try {
    const data = await api("GET", url);
    const courses = results(data).filter((c) => c.is_active);
    // Live state and next session per course, fetched side by side.
    const statuses = await Promise.all(courses.map((c) =>
      api("GET", `/courses/${c.id}/live-status`).catch(() => null)));
    const cards = courses.map((c, i) => card(c, statuses[i]));
    if (append) list.append(...cards);
    else show(list, cards);
    next = data.next;
    more.hidden = !next;
    if (!append && !cards.length) message(notice, "No course matches.", "info");
    else show(notice);
  } catch (error) {
    message(notice, error.message);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams();
  if (search.value.trim()) params.set("q", search.value.trim());
  if (category.value) params.set("category_id", category.value);
  history.replaceState(null, "", params.toString() ? `/?${params}` : "/");
  load();
});
category.addEventListener("change", () => form.requestSubmit());
more.addEventListener("click", () => load(true));
await loadCategories();
await load();
