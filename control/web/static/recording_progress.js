// Recording progress: a recording resumes where the viewer left it, and while it plays
// the player reports the position (PUT /sessions/{id}/progress). The server stores at
// most one report per few seconds per person, so reporting more often costs nothing but
// a request; pausing, leaving the page and the end report at once.

import { api, currentUser, el } from "./api.js";

const REPORT_MS = 10_000;
// Closer than this to either end, a recording starts from its beginning: resuming a
// few seconds in, or a few seconds before the end, helps nobody.
const RESUME_MARGIN_S = 5;

export function clock(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export class RecordingProgress {
  constructor(player) {
    this.player = player;
    this.video = player.video;
    this.timer = null;
    this.resumeAt = 0;
    this.note = el("p", { class: "player-resume", id: "resume-note", hidden: true });
    player.status.after(this.note);
    this.onPause = () => this.report();
    this.onMetadata = () => this.seekToResume();
    this.onLeave = () => this.report();
  }

  // Where to start: the stored position (signed-in viewers), or 0. Sets the player's
  // start position before it plays, and keeps reporting from then on.
  async resume() {
    if (!currentUser()) return 0;
    try {
      const at = await api("GET", `/sessions/${this.player.sessionId}/progress`);
      const end = at.duration_seconds - RESUME_MARGIN_S;
      if (at.position_seconds > RESUME_MARGIN_S && at.position_seconds < end) {
        this.resumeAt = at.position_seconds;
        this.player.resumeAt = this.resumeAt; // hls.js's startPosition
        this.note.textContent = `Resumed at ${clock(this.resumeAt)}`;
        this.note.hidden = false;
      }
    } catch {
      // No progress to read (a network blip): play from the start.
    }
    this.video.addEventListener("loadedmetadata", this.onMetadata);
    this.video.addEventListener("pause", this.onPause);
    this.video.addEventListener("ended", this.onPause);
    window.addEventListener("pagehide", this.onLeave);
    clearInterval(this.timer);
    this.timer = setInterval(() => { if (!this.video.paused) this.report(); }, REPORT_MS);
    return this.resumeAt;
  }

  // Safari's own HLS has no start position: seek once the recording's length is known.
  seekToResume() {
    if (this.resumeAt && this.video.currentTime < this.resumeAt - 1) {
      this.video.currentTime = this.resumeAt;
    }
  }

  report() {
    const duration = this.video.duration;
    if (!Number.isFinite(duration) || duration <= 0) return;
    const position = Math.min(this.video.currentTime, duration);
    api("PUT", `/sessions/${this.player.sessionId}/progress`,
        { position_seconds: position, duration_seconds: duration }).catch(() => {});
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.video.removeEventListener("loadedmetadata", this.onMetadata);
    this.video.removeEventListener("pause", this.onPause);
    this.video.removeEventListener("ended", this.onPause);
    window.removeEventListener("pagehide", this.onLeave);
  }
}
