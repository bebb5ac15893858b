// Administration: users and their roles (and deactivation), course categories, and
// webhooks (webhooks_admin.js).

import { api, currentUser, el, header, message, requireSignIn, results, show } from "./api.js";
import { WebhooksAdmin } from "./webhooks_admin.js";

header();
const notice = document.getElementById("notice");
const ROLES = ["student", "teacher", "admin"];

async function loadUsers() {
  const body = document.querySelector("#users tbody");
  const q = document.getElementById("user-q").value.trim();
  const data = await api("GET", `/users/?limit=200${q ? `&q=${encodeURIComponent(q)}` : ""}`);
  const update = (user, change) => async () => {
    try {
      await api("PATCH", `/users/${user.id}/`, change());
      message(notice, `${user.username} updated.`, "info");
    } catch (error) {
      message(notice, error.message);
    }
    loadUsers();
  };
  show(body, results(data).map((u) => {
    const role = el("select", { "aria-label": `Role of ${u.username}` },
                    ROLES.map((r) => el("option", { value: r }, r)));
    role.value = u.role;
    role.addEventListener("change", update(u, () => ({ role: role.value })));
    const active = el("input", { type: "checkbox", "aria-label": `${u.username} active` });
    active.checked = u.is_active;
    active.addEventListener("change", update(u, () => ({ is_active: active.checked })));
    return el("tr", { "data-user-id": u.id },
      el("td", {}, u.username, u.display_name ? ` (${u.display_name})` : ""),
      el("td", {}, role), el("td", {}, active));
  }));
}

async function loadCategories() {
  const list = document.getElementById("categories");
  const data = await api("GET", "/categories/?include_inactive=true");
  show(list, results(data).map((c) => el("li", {}, c.name, c.is_active ? "" : " (inactive)", " ",
    el("button", { type: "button", class: "small", onclick: async () => {
      if (!confirm(`Delete the category "${c.name}"?`)) return;
      try {
        await api("DELETE", `/categories/${c.id}/`);
      } catch (error) {
        message(notice, error.message);
      }
      loadCategories();
    } }, "Delete"))));
}

document.getElementById("user-search").addEventListener("submit", (event) => {
  event.preventDefault();
  loadUsers().catch((error) => message(notice, error.message));
});
document.getElementById("new-category").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = document.getElementById("category-name");
  try {
    await api("POST", "/categories/", { name: name.value.trim() });
    name.value = "";
    loadCategories();
  } catch (error) {
    message(notice, error.message);
  }
});

if (requireSignIn()) {
  if (currentUser().role !== "admin") message(notice, "This page is for admins.");
  else {
    try {
      const webhooks = new WebhooksAdmin(document.getElementById("webhooks-admin"));
      await Promise.all([loadUsers(), loadCategories(), webhooks.start()]);
    } catch (error) {
      message(notice, error.message);
    }
  }
}
