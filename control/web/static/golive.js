// "Go live from this browser": the camera and microphone published to the course over
// WHIP (POST /whip/{id} with the SDP offer, DELETE the answer's Location to stop).
// The stream key comes from the API each time (a key labelled "browser", created or
// rotated), is used for the one POST and never shown. ICE: host candidates only, no
// STUN, no trickle (the offer waits for gathering), simulcast off: meant for a browser
// on the server's machine or LAN.

import { ApiError, api, el, results, show } from "./api.js";

const KEY_LABEL = "browser";
const GATHERING_TIMEOUT_MS = 5_000;
const STATUS = {
  idle: "Not live from this browser.",
  connecting: "Connecting…",
  live: "Live from this browser.",
  stopped: "Stopped.",
};

// The course's "browser" key, fresh: created when none is usable, else rotated (the
// server keeps only hashes, so a key is readable only when made).
async function browserKey(courseId) {
  const keys = results(await api("GET", `/courses/${courseId}/stream-keys`));
  const mine = keys.find((k) => k.label === KEY_LABEL && k.active);
  const answer = mine
    ? await api("POST", `/stream-keys/${mine.id}/rotate`)
    : await api("POST", `/courses/${courseId}/stream-keys`, { label: KEY_LABEL });
  return answer.key;
}

// Resolves once every candidate is in the local description (WHIP without trickle),
// or after a timeout with what was gathered so far.
function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    }, GATHERING_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

// The server's JSON error message ({"error": {"message"}}), else the HTTP status.
async function serverMessage(response) {
  try {
    const data = await response.json();
    if (data && data.error && data.error.message) return data.error.message;
  } catch {
    // not JSON: fall through
  }
  return `the server answered ${response.status} ${response.statusText}`.trim();
}

export class GoLive {
  // `onKeyChange` is called after the "browser" key was created or rotated, so the
  // page can refresh its list of keys.
  constructor(container, courseId, { onKeyChange = null } = {}) {
    this.container = container;
    this.courseId = courseId;
    this.onKeyChange = onKeyChange;
    this.state = "idle";
    this.pc = null;
    this.stream = null;
    this.location = null;
    this.preview = el("video", { id: "golive-preview", muted: true, autoplay: true,
                                 playsinline: true, "aria-label": "Your camera" });
    this.preview.muted = true; // the attribute alone does not mute a live stream
    this.status = el("p", { id: "golive-status", class: "player-status", role: "status" });
    this.startButton = el("button", { type: "button", id: "golive-start",
                                      onclick: () => this.start() }, "Go live from this browser");
    this.stopButton = el("button", { type: "button", id: "golive-stop",
                                     onclick: () => this.stop() }, "Stop");
    this.onPageHide = () => this.hangUp(true);
    show(container, el("div", { id: "golive", class: "golive" },
      el("p", { class: "meta" },
        "Publishes this computer's camera and microphone to the class. Meant for a browser on ",
        "the server's machine or local network (no STUN/TURN server, one quality layer: ",
        "simulcast off); from elsewhere, stream with OBS."),
      el("div", { class: "player-frame golive-frame" }, this.preview),
      this.status,
      el("div", { class: "filters" }, this.startButton, this.stopButton)));
    this.setState("idle");
  }

  setState(state, text = STATUS[state]) {
    this.state = state;
    this.container.querySelector("#golive").dataset.state = state;
    this.status.textContent = text;
    this.status.classList.toggle("error", state === "error");
    const busy = state === "connecting" || state === "live";
    this.startButton.hidden = busy;
    this.stopButton.hidden = !busy;
  }

  get busy() {
    return this.state === "connecting" || this.state === "live";
  }

  async start() {
    if (this.busy) return;
    if (!navigator.mediaDevices || !window.RTCPeerConnection) {
      this.setState("error", "This browser cannot go live from this page: it needs a secure "
                    + "page (https, or the server's own machine) and WebRTC.");
      return;
    }
    this.setState("connecting");
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
        audio: true,
      });
    } catch (error) {
      this.setState("error", `The camera or microphone could not be used: ${error.message || error.name}`);
      return;
    }
    if (!this.busy) { // stopped while the browser asked for the devices
      this.stream.getTracks().forEach((track) => track.stop());
      this.stream = null;
      return;
    }
    this.preview.srcObject = this.stream;
    let key;
    try {
      key = await browserKey(this.courseId);
    } catch (error) {
      this.fail(`No stream key for this browser: ${error.message}`);
      return;
    }
    if (this.onKeyChange) this.onKeyChange();
    if (!this.busy) return; // stopped meanwhile
    try {
      await this.publish(key);
    } catch (error) {
      if (!this.busy) return; // stopped meanwhile: nothing to report
      this.fail(error instanceof ApiError || error.whip ? error.message
        : `Going live failed: ${error.message || error}`);
    }
  }

  async publish(key) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    for (const track of this.stream.getTracks()) {
      pc.addTransceiver(track, { direction: "sendonly", streams: [this.stream] });
    }
    pc.addEventListener("connectionstatechange", () => this.connectionChanged(pc));
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    if (this.pc !== pc) return;
    let response;
    try {
      response = await fetch(`/whip/${this.courseId}`, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${key}` },
        body: pc.localDescription.sdp,
      });
    } catch {
      throw whipError("The server cannot be reached; check your connection.");
    }
    if (response.status !== 201) {
      throw whipError(await serverMessage(response));
    }
    const where = response.headers.get("Location");
    this.location = where ? new URL(where, response.url).href : null;
    const answer = await response.text();
    if (this.pc !== pc) { // stopped while the server answered: end the publish it started
      this.deleteResource(false);
      return;
    }
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    window.addEventListener("pagehide", this.onPageHide);
    this.connectionChanged(pc);
  }

  connectionChanged(pc) {
    if (this.pc !== pc) return;
    const state = pc.connectionState;
    if (state === "connected") {
      this.setState("live");
    } else if (state === "disconnected" && this.state === "live") {
      this.checkEnded(pc);
    } else if (state === "failed" || state === "closed") {
      // The server ended the publish (the class was ended), or the media never got through.
      this.fail("The broadcast stopped: the class was ended or the connection was lost.");
    }
  }

  // Media stopped getting through: if the class was ended, say so now rather than after
  // the browser's ICE timeout (tens of seconds); a network blip may yet recover.
  async checkEnded(pc) {
    let status;
    try {
      status = await api("GET", `/courses/${this.courseId}/live-status`);
    } catch {
      return;
    }
    if (this.pc === pc && !status.is_live) this.fail("The broadcast stopped: the class was ended.");
  }

  // Ends the publish: DELETE the WHIP resource, close the connection, release the devices.
  async stop() {
    const hadResource = this.location !== null;
    await this.hangUp(false);
    this.setState("stopped", hadResource ? STATUS.stopped : STATUS.idle);
  }

  fail(text) {
    this.hangUp(false);
    this.setState("error", text);
  }

  async hangUp(leaving) {
    window.removeEventListener("pagehide", this.onPageHide);
    const pc = this.pc;
    this.pc = null;
    if (pc) pc.close();
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    this.stream = null;
    this.preview.srcObject = null;
    await this.deleteResource(leaving);
  }

  async deleteResource(leaving) {
    const where = this.location;
    this.location = null;
    if (!where) return;
    try {
      // keepalive lets the DELETE outlive a page being closed.
      await fetch(where, { method: "DELETE", keepalive: leaving });
    } catch {
      // The server ends the publish by itself once the media stops.
    }
  }

  // For the page switching courses: stop without a trace in the UI.
  close() {
    return this.hangUp(false);
  }
}

function whipError(text) {
  const error = new Error(text);
  error.whip = true;
  return error;
}
