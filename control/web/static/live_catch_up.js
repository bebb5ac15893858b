// Catching up with the live edge in low-latency mode: the player plays slightly faster
// while it sits further behind the edge than hls.js's target latency (the playlist's
// PART-HOLD-BACK, plus a little per stall), until it is there.
//
// hls.js has its own catch-up, but it only speeds up with more than a second buffered
// ahead of the playhead. With 200 ms parts and a 0.6 s hold-back the buffer ahead is
// never that long, so a player that started late (the first parts take a moment to
// load) stayed about half a second behind its target for the whole class. This one asks
// for a buffer of a part and a half ahead, so speeding up cannot drain it into a stall.
// The player turns hls.js's off (maxLiveSyncPlaybackRate 1) so the two never fight.

// At most 15% faster: hardly audible.
const MAX_RATE = 1.15;
// Closer than this to the target counts as there (hls.js uses the same).
const CLOSE_ENOUGH_S = 0.05;
// Without parts (a playlist without LL-HLS), hls.js's own rule: a second ahead.
const PLAIN_HLS_BUFFER_S = 1;

// The playback rate for a viewer `distance` s behind the target latency with `ahead` s
// buffered, given the playlist's part target (0 without parts) and target duration.
// Further behind than a target duration is watching the past on purpose: normal speed.
export function catchUpRate(distance, ahead, partTarget, targetDuration) {
  const needed = partTarget > 0 ? 1.5 * partTarget : PLAIN_HLS_BUFFER_S;
  if (distance <= CLOSE_ENOUGH_S || distance >= targetDuration || ahead <= needed) return 1;
  // Faster the further behind, smoothly, in steps of 0.05 (hls.js's curve).
  const rate = Math.round((2 / (1 + Math.exp(-0.75 * distance))) * 20) / 20;
  return Math.min(MAX_RATE, Math.max(1, rate));
}

// Sets `video`'s playback rate on each time update while `hls` plays a live playlist.
// A speed the viewer chose (the video's own menu) is theirs: left alone until it is 1.
export class LiveCatchUp {
  constructor(hls, video) {
    this.hls = hls;
    this.video = video;
    this.applied = video.playbackRate;
    this.onTime = () => this.update();
    video.addEventListener("timeupdate", this.onTime);
  }

  update() {
    const { hls, video } = this;
    if (video.playbackRate !== this.applied && video.playbackRate !== 1) return;
    const details = hls.latestLevelDetails;
    const target = hls.targetLatency;
    let rate = 1;
    if (details && details.live && target !== null && !video.paused) {
      const buffered = video.buffered;
      const ahead = buffered.length ? buffered.end(buffered.length - 1) - video.currentTime : 0;
      rate = catchUpRate(hls.latency - target, ahead, details.partTarget || 0,
                         details.targetduration);
    }
    this.applied = rate;
    if (video.playbackRate !== rate) video.playbackRate = rate;
  }

  detach() {
    this.video.removeEventListener("timeupdate", this.onTime);
    if (this.video.playbackRate === this.applied) this.video.playbackRate = 1;
  }
}
