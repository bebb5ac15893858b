// The embeddable player (the course's live_iframe): the live class when there is one,
// else a notice with the countdown to the next session; nothing else on the page.

import { api, countdown, el, show } from "./api.js";
import { Player } from "./player.js";

const courseId = Number(location.pathname.split("/")[2]);
const box = document.getElementById("player");
let liveSession = null;
let ticker = null;

async function refresh() {
  let status;
  try {
    status = await api("GET", `/courses/${courseId}/live-status`);
  } catch (error) {
    show(box, el("p", { class: "notice error", "data-state": "error" },
                  error.status === 404 ? "There is no such course." : error.message));
    return;
  }
  if (status.is_live) {
    if (liveSession === status.session_id) return;
    liveSession = status.session_id;
    clearInterval(ticker);
    const holder = el("div", { class: "player" });
    show(box, holder);
    new Player(holder, liveSession, { expect: "live", onEnded: () => { liveSession = null; } })
      .start();
    return;
  }
  liveSession = null;
  clearInterval(ticker);
  const next = status.next_session;
  const line = el("p", { class: "countdown" });
  show(box, el("div", { class: "not-live", "data-state": "not-live" },
                el("p", {}, "The class is not live."), next ? line : null));
  if (next) {
    const tick = () => { line.textContent = `Starts in ${countdown(next.start_time)}`; };
    tick();
    ticker = setInterval(tick, 1000);
  }
}

await refresh();
setInterval(refresh, 15_000);
