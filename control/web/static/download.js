// Saving a file the API answers (a CSV report) from a page: a plain link cannot carry the
// bearer token, so the file is fetched with it and saved from a blob: object URL (no
// navigation, so the page's Content-Security-Policy needs nothing more).

import { ApiError, el, token } from "./api.js";

// The object URL is let go a little after the click: the browser reads it asynchronously.
const REVOKE_AFTER_MS = 10_000;

export async function saveDownload(path, filename) {
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached; check your connection.");
  }
  if (!response.ok) {
    throw new ApiError(response.status, "http_" + response.status,
                       `The download failed (${response.status} ${response.statusText}).`);
  }
  const href = URL.createObjectURL(await response.blob());
  el("a", { href, download: filename }).click();
  setTimeout(() => URL.revokeObjectURL(href), REVOKE_AFTER_MS);
}
