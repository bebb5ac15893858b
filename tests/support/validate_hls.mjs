// Checks HLS playlists against the spec, for tests/support/hls_validator.py.
//
// Usage: node validate_hls.mjs <hls-parser package folder>, with a JSON object
// {name: playlist text} on stdin. Prints {name: [problems]} (an empty list: valid).
//
// Each playlist is parsed by hls-parser in strict mode (its first complaint is thrown),
// then checked for Low-Latency and master rules that hls-parser does not check itself;
// those problems start with "harness:".

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const HLS = require(path.resolve(process.argv[2]));
HLS.setOptions({ strictMode: true, silent: true });

// Printed durations have six decimals: sums may be off by a few microseconds.
const SLACK = 1e-3;
const AUDIO_CODECS = /^(mp4a\.|ac-3|ec-3|opus|flac|mp3|\.mp3)/i;

function mediaProblems(playlist) {
  const problems = [];
  const segments = playlist.segments;
  const complete = segments.filter((s) => s.uri !== "");
  const control = playlist.lowLatencyCompatibility;
  const partTarget = playlist.partTargetDuration;

  // RFC 8216bis 4.4.3.8: PART-HOLD-BACK is at least twice PART-TARGET (hls-parser: once).
  if (control?.partHoldBack !== undefined && partTarget !== undefined
      && control.partHoldBack < 2 * partTarget - 1e-9) {
    problems.push(`harness: PART-HOLD-BACK ${control.partHoldBack} is less than twice `
      + `PART-TARGET ${partTarget}`);
  }

  // A Parent Segment is its parts: their durations add up to its EXTINF. A part written
  // after its segment's URI is counted with the next segment and breaks this.
  complete.forEach((segment, index) => {
    const parts = segment.parts.filter((p) => !p.hint);
    if (parts.length === 0) return;
    const sum = parts.reduce((total, p) => total + (p.duration ?? 0), 0);
    if (Math.abs(sum - segment.duration) > SLACK) {
      problems.push(`harness: the parts of segment ${index} (${segment.uri}) last ${sum.toFixed(6)} s, `
        + `its EXTINF says ${segment.duration}`);
    }
  });

  // Parts are listed for the segments at the live edge: once a segment has them, every
  // later one has them too.
  const firstWithParts = complete.findIndex((s) => s.parts.length > 0);
  if (firstWithParts >= 0) {
    complete.slice(firstWithParts).forEach((segment, offset) => {
      if (segment.parts.length === 0) {
        problems.push(`harness: segment ${firstWithParts + offset} (${segment.uri}) lists no `
          + "EXT-X-PART although an earlier segment does");
      }
    });
  }

  // The preload hint is the last thing of the segment in progress.
  segments.forEach((segment, index) => {
    segment.parts.forEach((part, partIndex) => {
      if (!part.hint) return;
      if (index !== segments.length - 1 || segment.uri !== ""
          || partIndex !== segment.parts.length - 1) {
        problems.push("harness: EXT-X-PRELOAD-HINT must come after every EXT-X-PART and "
          + "every complete segment");
      }
    });
  });

  // Delta updates: EXT-X-SKIP needs CAN-SKIP-UNTIL, and only segments older than the
  // Skip Boundary may be skipped, so what is shown lasts more than CAN-SKIP-UNTIL.
  if (playlist.skip) {
    const canSkipUntil = control?.canSkipUntil;
    if (canSkipUntil === undefined) {
      problems.push("harness: EXT-X-SKIP without EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL");
    } else {
      const shown = complete.reduce((total, s) => total + s.duration, 0);
      if (shown <= canSkipUntil - SLACK) {
        problems.push(`harness: EXT-X-SKIP skipped segments within the Skip Boundary `
          + `(${shown.toFixed(6)} s shown, CAN-SKIP-UNTIL=${canSkipUntil})`);
      }
    }
  }

  // fMP4: every segment needs an init section, so the first one listed needs EXT-X-MAP
  // (in a delta update too: a player may not have the skipped part's MAP).
  if (complete.some((s) => s.map) && !complete[0].map) {
    problems.push(`harness: segment 0 (${complete[0].uri}) has no EXT-X-MAP in force `
      + "although later segments have one");
  }
  return problems;
}

function masterProblems(playlist) {
  const problems = [];
  const bandwidthOf = new Map(playlist.variants.map((v) => [v.uri, v.bandwidth]));
  for (const variant of playlist.variants) {
    const groupUris = variant.audio.map((r) => r.uri).filter((uri) => uri);
    if (groupUris.length === 0) continue;
    // RFC 8216 4.3.4.2: CODECS lists every format of the variant, its renditions' too.
    const codecs = (variant.codecs ?? "").split(",").map((c) => c.trim());
    if (!codecs.some((c) => AUDIO_CODECS.test(c))) {
      problems.push(`harness: variant ${variant.uri} plays an audio group but its CODECS `
        + `"${variant.codecs ?? ""}" has no audio codec`);
    }
    // BANDWIDTH bounds the variant with any of its renditions.
    for (const uri of groupUris) {
      const audio = bandwidthOf.get(uri);
      if (audio !== undefined && variant.bandwidth <= audio) {
        problems.push(`harness: variant ${variant.uri} BANDWIDTH ${variant.bandwidth} does not `
          + `include its audio's (${uri}: ${audio})`);
      }
    }
  }
  return problems;
}

const texts = JSON.parse(readFileSync(0, "utf8"));
const results = {};
for (const [name, text] of Object.entries(texts)) {
  let playlist;
  try {
    playlist = HLS.parse(text);
  } catch (error) {
    results[name] = [`hls-parser: ${error.message}`];
    continue;
  }
  results[name] = playlist.isMasterPlaylist ? masterProblems(playlist) : mediaProblems(playlist);
}
process.stdout.write(JSON.stringify(results));
