// The player: a session's signed playback URL played with hls.js (live or recording),
// a quality menu (Auto, each rung by name, Audio only), retries with backoff after
// network errors, a heartbeat while a signed-in viewer watches, and plain messages
// when the class is not live or access is refused.

import { api, currentUser, el, show } from "./api.js";

const HEARTBEAT_MS = 30_000;
const MAX_BACKOFF_MS = 30_000;
const AUDIO_ONLY = "audio";

export function levelName(level) {
  const height = level.height || 0;
  if (!height) return "Audio only";
  if (height >= 720) return "HD";
  if (height >= 480) return "SD";
  return "Mobile";
}

export class Player {
  // onEnded: called when a live class ends under the viewer (so the page can refresh).
  constructor(container, sessionId, { expect = "live", onEnded = null } = {}) {
    this.container = container;
    this.sessionId = sessionId;
    this.expect = expect;
    this.onEnded = onEnded;
    this.hls = null;
    this.grant = null;
    this.choice = "auto"; // "auto", a level index as a string, or AUDIO_ONLY
    this.backoff = 1000;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.video = el("video", { id: "video", controls: true, playsinline: true, preload: "auto" });
    this.menu = el("select", { id: "quality", "aria-label": "Quality" });
    this.menu.addEventListener("change", () => this.choose(this.menu.value));
    this.status = el("p", { class: "player-status", id: "player-status", role: "status" });
    this.download = el("span", { class: "player-download" });
    const bar = el("div", { class: "player-bar" },
                   el("label", {}, "Quality ", this.menu), this.download);
    show(container, el("div", { class: "player-frame" }, this.video), bar, this.status);
    this.setState("loading", "Loading…");
  }

  setState(state, text) {
    this.container.dataset.state = state;
    this.status.textContent = text;
    this.status.className = `player-status ${state}`;
  }

  async start() {
    let grant;
    try {
      grant = await api("GET", `/sessions/${this.sessionId}/playback`);
    } catch (error) {
      this.refuse(error);
      return;
    }
    if (this.expect === "live" && grant.kind !== "live") {
      this.stop();
      this.setState("ended", "The class has ended. Its recording is listed below.");
      if (this.onEnded) this.onEnded();
      return;
    }
    this.grant = grant;
    if (grant.download_url) {
      show(this.download, el("a", { href: grant.download_url, download: "" }, "Download MP4"));
    }
    this.play();
  }

  refuse(error) {
    this.stop();
    if (error.status === 403 || error.status === 401) {
      this.setState("refused", `Access refused: ${error.message}`);
    } else if (error.status === 409) {
      this.setState("not-live", "The class is not live.");
      if (this.expect === "live" && this.onEnded) this.onEnded();
    } else if (error.status === 0) {
      this.retry(); // the network blinked: try again shortly
    } else {
      this.setState("error", error.message);
    }
  }

  masterUrl() {
    return this.grant.url;
  }

  audioUrl() {
    return this.grant.url.replace(/master\.m3u8$/, "audio/index.m3u8");
  }

  play() {
    this.teardown();
    const Hls = window.Hls;
    const url = this.choice === AUDIO_ONLY ? this.audioUrl() : this.masterUrl();
    this.container.classList.toggle("audio-only", this.choice === AUDIO_ONLY);
    if (!Hls || !Hls.isSupported()) {
      if (this.video.canPlayType("application/vnd.apple.mpegurl")) {
        this.video.src = url; // Safari plays HLS itself, adaptive
        this.buildMenu([]);
        this.autoplay();
        return;
      }
      this.setState("error", "This browser cannot play the class (no HLS support).");
      return;
    }
    const hls = new Hls({ autoStartLoad: true, lowLatencyMode: false, enableWorker: true });
    this.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      this.buildMenu(this.choice === AUDIO_ONLY ? [] : hls.levels);
      if (this.choice !== "auto" && this.choice !== AUDIO_ONLY) {
        hls.currentLevel = Number(this.choice);
      }
      this.autoplay();
    });
    hls.on(Hls.Events.FRAG_LOADED, () => { this.backoff = 1000; });
    hls.on(Hls.Events.LEVEL_SWITCHED, () => this.describe());
    hls.on(Hls.Events.ERROR, (_event, data) => this.onError(data));
    hls.loadSource(url);
    hls.attachMedia(this.video);
    this.video.onplaying = () => this.describe();
    this.video.onwaiting = () => {
      this.setState("buffering", "Buffering…");
      this.waitingAt = this.video.currentTime;
    };
    // Playback can resume after a stall without a "playing" event: time moving on is
    // what says the player plays again.
    this.video.ontimeupdate = () => {
      if (this.waitingAt !== undefined && this.video.currentTime > this.waitingAt) {
        this.waitingAt = undefined;
        this.describe();
      }
    };
  }

  autoplay() {
    this.video.play().then(() => this.describe()).catch(() => {
      this.setState("paused", "Press play to watch.");
    });
    this.startHeartbeat();
  }

  describe() {
    if (this.video.paused) return;
    let what = "Playing";
    if (this.choice === AUDIO_ONLY) what = "Playing audio only";
    else if (this.hls && this.hls.currentLevel >= 0) {
      const level = this.hls.levels[this.hls.currentLevel];
      what = `Playing ${levelName(level)}${this.choice === "auto" ? " (auto)" : ""}`;
    }
    this.setState("playing", what);
  }

  buildMenu(levels) {
    const options = [el("option", { value: "auto" }, "Auto")];
    // hls.js orders levels by bitrate, lowest first; people read menus best first.
    levels.map((level, index) => ({ level, index }))
      .filter(({ level }) => level.height)
      .sort((a, b) => b.level.height - a.level.height)
      .forEach(({ level, index }) => {
        options.push(el("option", { value: String(index) }, levelName(level)));
      });
    options.push(el("option", { value: AUDIO_ONLY }, "Audio only"));
    show(this.menu, options);
    this.menu.value = this.choice;
  }

  choose(value) {
    const wasAudio = this.choice === AUDIO_ONLY;
    this.choice = value;
    if (value === AUDIO_ONLY || wasAudio || !this.hls) {
      this.play(); // another playlist: a fresh instance
      return;
    }
    // currentLevel switches now (flushing the buffer), so the change shows at once.
    this.hls.currentLevel = value === "auto" ? -1 : Number(value);
    this.describe();
  }

  onError(data) {
    if (!data.fatal) return;
    const Hls = window.Hls;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      this.hls.recoverMediaError();
      return;
    }
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      this.retry();
      return;
    }
    this.teardown();
    this.setState("error", "Playback failed; reload the page to try again.");
  }

  // After a network failure: wait (longer each time), then ask for a fresh grant, which
  // also tells whether the class is still live and renews an expired token.
  retry() {
    this.teardown();
    this.setState("reconnecting", "Connection lost; reconnecting…");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.start(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
  }

  startHeartbeat() {
    if (this.heartbeatTimer || !currentUser() || this.expect !== "live") return;
    this.heartbeatTimer = setInterval(() => {
      if (this.video.paused) return;
      api("POST", `/sessions/${this.sessionId}/heartbeat`).catch(() => {});
    }, HEARTBEAT_MS);
  }

  teardown() {
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
  }

  stop() {
    this.teardown();
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    this.video.removeAttribute("src");
  }
}
