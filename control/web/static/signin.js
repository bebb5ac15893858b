// Signing in: the token goes to localStorage, then back to where the viewer came from.

import { api, el, header, message, remember } from "./api.js";

header();
const form = document.getElementById("signin");
const notice = document.getElementById("notice");

function destination() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  // Only paths on this site: never an open redirect.
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const answer = await api("POST", "/auth/login", {
      username: form.username.value.trim(), password: form.password.value,
    });
    remember(answer);
    location.href = destination();
  } catch (error) {
    message(notice, error.message);
  }
});
if (new URLSearchParams(location.search).get("registered")) {
  notice.append(el("p", { class: "notice info" }, "Account created: sign in."));
}
