// Self-registration (when the server allows it), then signing in with the new account.

import { api, header, message, remember } from "./api.js";

header();
const form = document.getElementById("register");
const notice = document.getElementById("notice");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    username: form.username.value.trim(), password: form.password.value,
    email: form.email.value.trim(), display_name: form.display_name.value.trim(),
  };
  try {
    await api("POST", "/auth/register", body);
    remember(await api("POST", "/auth/login", { username: body.username, password: body.password }));
    location.href = "/";
  } catch (error) {
    message(notice, error.message); // e.g. "self-registration is turned off on this server"
  }
});
