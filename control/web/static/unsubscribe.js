// The link in every mail lands here: one button stops mail, signed in or not (the token in
// the link says whose). A click, not the page load, does it: mail scanners open links.
import { api, header, message } from "/assets/api.js";

header();
const notice = document.getElementById("notice");
const form = document.getElementById("unsubscribe");
const token = new URLSearchParams(location.search).get("token") || "";

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("POST", `/mail/unsubscribe?token=${encodeURIComponent(token)}`);
    form.hidden = true;
    message(notice, "Done: you will get no more e-mails. Change this any time in Notifications.",
            "info");
  } catch (error) {
    message(notice, error.message);
  }
});
