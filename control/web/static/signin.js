// Signing in: the token goes to localStorage, then back to where the viewer came from.

import { api, el, header, message, remember } from "./api.js";
import { signInDestination } from "./sign_in_destination.js";

header();
const form = document.getElementById("signin");
const notice = document.getElementById("notice");

function destination() {
  return signInDestination(location.search, location.origin);
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
