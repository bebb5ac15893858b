// The player: a session's signed playback URL played with hls.js (live or recording),
// a quality menu (Auto, each rung by name, Audio only), retries with backoff after
// network errors, a heartbeat while a signed-in viewer watches, and plain messages
// when the class is not live or access is refused. While live it plays Low-Latency HLS
// near the edge and says how far behind live it is; the live playlist keeps the whole
// class, so a student can go back to its start ("From the start") and return
// ("Back to live").

import { api, currentUser, el, show } from "./api.js";
import { LiveCatchUp } from "./live_catch_up.js";
import { RecordingProgress } from "./recording_progress.js";

const HEARTBEAT_MS = 30_000;
const MAX_BACKOFF_MS = 30_000;
const AUDIO_ONLY = "audio";
// Within this many seconds of where hls.js means to sit (its live sync position) the
// player counts as live: it catches up by itself from there (a slightly faster
// playbackRate, live_catch_up.js), and a stall adds up to a target duration to
// hls.js's target latency.
const LIVE_SLACK_S = 3;
const LIVE_TICK_MS = 1000;

// hls.js settings, checked against hls.js 1.6 (src/config.ts, latency-controller.ts).
export const HLS_CONFIG = {
  enableWorker: true,
  // Parts, blocking playlist reloads and delta updates when the playlist offers them;
  // a playlist without them plays as plain HLS.
  lowLatencyMode: true,
  // No liveSyncDuration(Count): hls.js then targets the playlist's PART-HOLD-BACK (or
  // HOLD-BACK, or 3 target durations without either), and starts there too, even though
  // the live playlist lists the class from its first segment.
  // No liveMaxLatencyDuration(Count) either (Infinity): with one, hls.js would pull a
  // student watching from the start of the class back to the live edge.
  // Catching up with the edge is live_catch_up.js's (hls.js's own needs a second
  // buffered ahead, which 200 ms parts never give): hls.js leaves the rate alone.
  maxLiveSyncPlaybackRate: 1,
  // Each stall moves the target back by about a part, not hls.js's default full second
  // (both capped at one target duration): a student on a weak connection backs off in
  // small steps instead of losing the low latency at the first stall.
  liveSyncOnStallIncrease: 0.25,
  // The first rung: measured (hls.js loads a segment of the lowest rung first, to time
  // it), not the master playlist's first (HD): on a weak connection HD would start slow
  // and play in fits until hls.js had measured enough to leave it.
  startLevel: -1,
  // Switching up: hls.js counts no download as shorter than 50 ms, so a part of 200 ms
  // shows at most 4 times its rung's bitrate, and its default (0.7: an estimate 1.43 times
  // the next rung's) asks more than that to go from SD to HD (2.4 times the bitrate): a
  // student who fell back to SD would stay there. 0.85 (Shaka's default) climbs back.
  abrBandWidthUpFactor: 0.85,
  // Should hls.js have to jump forward, it jumps to what is buffered rather than past it.
  liveSyncMode: "buffered",
  // A class lasts hours: keep 30 s behind the playhead (an instant short rewind) and
  // let what is older go; going further back loads it again.
  backBufferLength: 30,
};

// A weak connection (issue 11): hls.js's ABR alone, in low-latency mode, freezes the
// picture on the way down (checked against hls.js 1.6's abr-controller.ts,
// base-stream-controller.ts and fragment-finders.ts, in chromium):
// - It rates the connection with moving averages whose half-lives are 3 and 9 s of
//   download time: after the connection weakens it keeps choosing the rung it is on for
//   seconds, while about half a second of media is buffered. The player times each part's
//   transfer (`watchLink`): when one took longer than it plays, or the last few more than
//   WEAK_LINK_LOAD_RATIO of that, it sets the estimate to what they measured, and hls.js
//   picks a rung that fits at its next choice.
// - Only a segment's first part starts with a keyframe, and a new rung is loaded from a
//   keyframe: switched in mid-segment, it reloads its segment from the start, replacing
//   what is buffered, and chromium drops the old rung's frames up to its next keyframe:
//   the picture freezes (the sound plays on) until the new rung catches up. Behind the
//   live edge hls.js chooses a rung where a segment starts; at the edge, before each part.
//   So the player holds a new choice back until a segment starts (`SegmentStartAbr`).
// - Where a segment starts, hls.js looks the end of the buffer up in the new rung's
//   playlist. Chromium ends the buffered range a microsecond short of the boundary, which
//   hls.js absorbs with the last segment's `endDTS`, but a segment loaded as parts never
//   gets one, and the new rung reloads the segment just played: `keepSegmentEnd` sets it.
// - A rung can change only where a segment starts, every 2 s, and about half a second is
//   buffered (live_catch_up.js keeps the player near PART-HOLD-BACK): finishing a segment
//   on a rung the connection no longer carries could run the buffer dry. So from the slow
//   parts until the lower rung plays, the player plays a little slower (`easeOff`): as
//   fast as the media arrives, between WEAK_LINK_MIN_RATE and 1; live_catch_up.js then
//   catches up again.
const WEAK_LINK_PARTS = 3;
const WEAK_LINK_LOAD_RATIO = 0.75;
const WEAK_LINK_MIN_RATE = 0.8;

// Whether hls.js's next load would continue a segment of a live playlist in the middle
// (see above): the end of the buffer more than half a part past a segment's start and
// before its end. Far behind the edge, where hls.js loads whole segments, never.
export function midSegment(hls) {
  const level = hls.levels[hls.loadLevel];
  const details = level && level.details;
  const buffer = hls.mainForwardBufferInfo;
  const parts = details && details.live && details.partList;
  if (!parts || !parts.length || !buffer || !buffer.len) return false;
  const end = buffer.end;
  if (end < parts[0].start) return false;
  const tolerance = (details.partTarget || 0.2) / 2;
  const hint = details.fragmentHint; // the segment in progress
  if (hint && end > hint.start - tolerance) return end - hint.start > tolerance;
  const segments = details.fragments;
  for (let i = segments.length - 1; i >= 0; i--) {
    const segment = segments[i];
    if (end > segment.start - tolerance) {
      return end - segment.start > tolerance && segment.end - end > tolerance;
    }
  }
  return false;
}

// hls.js's ABR controller, its choice held back while the next load is mid-segment.
// Its emergency switch too, when a part loads too slowly for the buffer: mid-segment, it
// freezes the picture until the new rung's next keyframe, longer than the old rung takes
// to finish its segment unless the connection all but stopped. That rule is the private
// `_abandonRulesCheck` (hls.js 1.6, the version the Makefile pins).
function segmentStartAbr(Hls) {
  return class SegmentStartAbr extends Hls.DefaultConfig.abrController {
    constructor(hls) {
      super(hls);
      this.player = hls;
      const abandonRules = this._abandonRulesCheck;
      if (typeof abandonRules === "function") {
        this._abandonRulesCheck = (...args) => {
          if (!midSegment(hls)) abandonRules(...args);
        };
      }
    }

    get nextAutoLevel() {
      const chosen = super.nextAutoLevel;
      const loading = this.player.loadLevel;
      if (chosen === loading || loading < 0 || !midSegment(this.player)) return chosen;
      return loading;
    }

    set nextAutoLevel(level) {
      super.nextAutoLevel = level;
    }
  };
}

// After a part is buffered: its segment's end as hls.js records it for a whole segment
// (`endDTS`, see above), so that a rung switch at the next segment goes on from there.
export function keepSegmentEnd({ frag, part }) {
  const video = part && frag.type === "main" && frag.elementaryStreams.video;
  if (video && Number.isFinite(video.endDTS)) frag.endDTS = video.endDTS;
}

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
    container.player = this; // for the browser tests and the console
    this.sessionId = sessionId;
    this.expect = expect;
    this.onEnded = onEnded;
    this.hls = null;
    this.easing = null; // playing slower while a weakened connection is left (easeOff)
    this.grant = null;
    this.choice = "auto"; // "auto", a level index as a string, or AUDIO_ONLY
    this.backoff = 1000;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.liveTimer = null;
    this.rungs = null; // the master playlist's levels, once known
    this.resumeAt = -1; // where a fresh hls.js instance starts; -1: the live edge
    this.video = el("video", { id: "video", controls: true, playsinline: true, preload: "auto" });
    this.menu = el("select", { id: "quality", "aria-label": "Quality" });
    this.menu.addEventListener("change", () => this.choose(this.menu.value));
    this.status = el("p", { class: "player-status", id: "player-status", role: "status" });
    this.download = el("span", { class: "player-download" });
    // Where the viewer is against the live edge, and the ways to move along the class.
    this.position = el("span", { class: "live-position", id: "live-position" });
    this.fromStart = el("button", {
      type: "button", class: "small secondary", id: "from-start",
      "aria-label": "Watch the class from its start", onclick: () => this.seekToStart(),
    }, "From the start");
    this.toLive = el("button", {
      type: "button", class: "small", id: "back-to-live", hidden: true,
      "aria-label": "Back to live: jump to the live class", onclick: () => this.seekToLive(),
    }, "Back to live");
    this.liveControls = el("span", { class: "live-controls", role: "group", hidden: true,
                                      "aria-label": "Live position" },
                           this.position, this.fromStart, this.toLive);
    const bar = el("div", { class: "player-bar" },
                   el("label", {}, "Quality ", this.menu), this.liveControls, this.download);
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
    if (this.expect === "recording" && grant.kind === "recording" && !this.progress) {
      this.progress = new RecordingProgress(this); // resume point and position reports
      await this.progress.resume();
    }
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
    const hls = new Hls({ ...HLS_CONFIG, abrController: segmentStartAbr(Hls),
                          startPosition: this.resumeAt });
    this.recentParts = [];
    this.hls = hls;
    this.catchUp = new LiveCatchUp(hls, this.video);
    this.container.dataset.lowLatency = String(hls.config.lowLatencyMode);
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      // The audio playlist alone has no rungs: the menu keeps the master's, so a
      // student back from audio only can pick one.
      if (this.choice !== AUDIO_ONLY) this.rungs = hls.levels;
      this.buildMenu(this.rungs || []);
      if (this.choice !== "auto" && this.choice !== AUDIO_ONLY) {
        hls.currentLevel = Number(this.choice);
      }
      this.autoplay();
    });
    hls.on(Hls.Events.FRAG_LOADED, (_event, data) => {
      this.backoff = 1000;
      this.watchLink(hls, data);
    });
    hls.on(Hls.Events.FRAG_BUFFERED, (_event, data) => keepSegmentEnd(data));
    hls.on(Hls.Events.LEVEL_SWITCHED, (_event, { level }) => {
      this.easeBack(level);
      this.describe();
    });
    hls.on(Hls.Events.LEVEL_UPDATED, () => this.showPosition());
    hls.on(Hls.Events.ERROR, (_event, data) => this.onError(data));
    hls.loadSource(url);
    hls.attachMedia(this.video);
    // Until it first plays, currentTime is not yet where hls.js starts: no distance.
    this.positioned = false;
    this.video.onplaying = () => {
      this.positioned = true;
      this.describe();
    };
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
      this.showPosition();
    };
    // Paused, the live edge moves on all the same: the distance is kept up to date.
    clearInterval(this.liveTimer);
    this.liveTimer = setInterval(() => this.showPosition(), LIVE_TICK_MS);
  }

  // After each part of the main rung: when it took longer to arrive than it plays, or the
  // last WEAK_LINK_PARTS together more than WEAK_LINK_LOAD_RATIO of their playing time,
  // hls.js's estimate drops to what they measured (see above). Bytes over transfer time,
  // from the first byte: a blocking request's wait for its part to exist is not the
  // connection's.
  watchLink(hls, { frag, part }) {
    if (!part || frag.type !== "main" || !hls.autoLevelEnabled) return;
    const { loading, loaded } = part.stats;
    const seconds = (loading.end - loading.first) / 1000;
    if (!(seconds >= 0) || !loaded || !part.duration) return;
    const recent = this.recentParts;
    if (recent.length && recent[recent.length - 1].level !== frag.level) recent.length = 0;
    const last = { level: frag.level, seconds, duration: part.duration, bits: loaded * 8 };
    // A part of the slowed rung arriving in good time again: a false alarm (a busy
    // machine), or a connection that recovered.
    if (this.easing && this.easing.level === frag.level
        && seconds < WEAK_LINK_LOAD_RATIO * part.duration) this.easeBack();
    recent.push(last);
    if (recent.length > WEAK_LINK_PARTS) recent.shift();
    let parts = null;
    if (last.seconds >= last.duration) parts = [last];
    else if (recent.length === WEAK_LINK_PARTS) parts = recent;
    if (!parts) return;
    const took = parts.reduce((sum, p) => sum + p.seconds, 0);
    const lasts = parts.reduce((sum, p) => sum + p.duration, 0);
    if (took < WEAK_LINK_LOAD_RATIO * lasts) return;
    const measured = parts.reduce((sum, p) => sum + p.bits, 0) / took;
    if (measured < hls.bandwidthEstimate) hls.bandwidthEstimate = measured;
    recent.length = 0;
    this.easeOff(hls, frag.level, lasts / took);
  }

  // Slower, at the rate the media of rung `level` arrives (`arriving`, 1 being real time),
  // until a lower rung plays (or a few segments' time has passed); never over a speed
  // the viewer chose, and not on the lowest rung (nothing lower will come).
  easeOff(hls, level, arriving) {
    const video = this.video;
    if (this.easing || level <= hls.minAutoLevel || !this.catchUp) return;
    if (video.playbackRate !== this.catchUp.applied) return; // the viewer's own speed
    const rate = Math.min(1, Math.max(WEAK_LINK_MIN_RATE, arriving));
    if (rate >= 1) return;
    const details = hls.latestLevelDetails;
    const limit = 3 * ((details && details.targetduration) || 2) * 1000;
    this.easing = { level, rate, timer: setTimeout(() => this.easeBack(), limit) };
    video.playbackRate = rate;
  }

  easeBack(level = -1) {
    const easing = this.easing;
    if (!easing || (level >= 0 && level >= easing.level)) return;
    clearTimeout(easing.timer);
    this.easing = null;
    if (this.video.playbackRate === easing.rate) this.video.playbackRate = 1;
  }

  isLive() {
    if (this.hls) {
      const details = this.hls.latestLevelDetails;
      return Boolean(details && details.live);
    }
    // Safari's own HLS: a live stream has no end.
    return this.expect === "live" && this.video.duration === Infinity;
  }

  // Where playing live means being: hls.js's live sync position (the edge less its
  // target latency), or, with Safari's own HLS, the end of what can be sought.
  livePosition() {
    if (this.hls) return this.hls.liveSyncPosition;
    const seekable = this.video.seekable;
    return seekable.length ? seekable.end(seekable.length - 1) : null;
  }

  // Seconds behind live (0 when live or unknown).
  behindLive() {
    const live = this.isLive() ? this.livePosition() : null;
    if (live === null || live === undefined || !Number.isFinite(live)) return 0;
    return Math.max(0, live - this.video.currentTime);
  }

  showPosition() {
    const live = this.positioned && this.isLive() && this.livePosition() !== null;
    this.liveControls.hidden = !live;
    if (!live) {
      delete this.container.dataset.live;
      return;
    }
    const behind = this.behindLive();
    const atLive = behind < LIVE_SLACK_S;
    const text = atLive ? "Live" : `Behind live -${Math.round(behind)} s`;
    if (this.position.textContent !== text) this.position.textContent = text;
    this.position.classList.toggle("at-live", atLive);
    this.container.dataset.live = atLive ? "live" : "behind";
    this.toLive.hidden = atLive;
  }

  seekToLive() {
    const live = this.livePosition();
    if (live === null || !Number.isFinite(live)) return;
    this.video.currentTime = live;
    if (this.video.paused) this.video.play().catch(() => {});
    this.showPosition();
  }

  // The live playlist lists the whole class: what can be sought starts at its start.
  seekToStart() {
    const seekable = this.video.seekable;
    if (!seekable.length) return;
    this.video.currentTime = seekable.start(0);
    if (this.video.paused) this.video.play().catch(() => {});
    this.showPosition();
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
    // A fresh instance (another playlist, a reconnection) goes on where the viewer was
    // when behind live; at the edge it starts at the (new) edge.
    clearInterval(this.liveTimer);
    this.easeBack();
    this.liveTimer = null;
    if (this.hls) {
      this.resumeAt = this.behindLive() >= LIVE_SLACK_S ? this.video.currentTime : -1;
      this.catchUp.detach();
      this.hls.destroy();
      this.hls = null;
    }
  }

  stop() {
    if (this.progress) this.progress.stop();
    this.progress = null;
    this.teardown();
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    this.resumeAt = -1;
    this.liveControls.hidden = true;
    this.video.removeAttribute("src");
  }
}
