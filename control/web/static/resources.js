// Course resources on the pages: a file list (with a download button each, and a delete
// button for staff), the upload form for teachers, and the download through a signed URL.
// A file is sent as the request body itself: the browser streams it from disk.

import { api, ApiError, el, forget, message, results, show, token } from "./api.js";

const sizeFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export function formatSize(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${sizeFormat.format(bytes / 1000)} kB`;
  return `${sizeFormat.format(bytes / 1_000_000)} MB`;
}

// POST the file to `${owner}/resources` (owner: /courses/ID or /sessions/ID).
export async function uploadResource(owner, file, title) {
  const params = new URLSearchParams({ filename: file.name });
  if (title) params.set("title", title);
  const headers = { Accept: "application/json", "Content-Type": "application/octet-stream" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let response;
  try {
    response = await fetch(`${owner}/resources?${params}`, { method: "POST", headers, body: file });
  } catch {
    throw new ApiError(0, "network", "The upload did not get through (too large, or the connection dropped).");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401 && t) forget();
    throw new ApiError(response.status, error.code || `http_${response.status}`,
                       error.message || response.statusText || "upload failed");
  }
  return data;
}

// Ask for a short signed link, then let the browser save the file.
export async function downloadResource(resource, box) {
  try {
    const grant = await api("GET", `/resources/${resource.id}/download-url`);
    const link = el("a", { href: grant.url, download: grant.filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    message(box, error.message);
  }
}

// The list of `rows`, each downloadable; `onDelete` (staff) adds a delete button.
export function resourceList(rows, box, { id, onDelete } = {}) {
  return el("ul", { class: "plain resources", id }, rows.map((r) => el("li", {
    class: "resource", "data-resource-id": r.id },
    el("strong", { class: "resource-title" }, r.title), " ",
    el("span", { class: "meta" }, `${r.filename} · ${formatSize(r.size_bytes)}`), " ",
    el("button", { type: "button", class: "small download-resource",
                   onclick: () => downloadResource(r, box) }, "Download"),
    onDelete ? [" ", el("button", { type: "button", class: "small delete-resource",
                                    onclick: () => onDelete(r) }, "Delete")] : null)));
}

// The course's files and its sessions' files, as the caller may see them.
export async function courseResources(courseId) {
  return results(await api("GET", `/courses/${courseId}/resources`));
}

export function showResources(box, rows, options) {
  show(box, rows.length ? resourceList(rows, box, options)
    : el("p", { class: "meta" }, "No file yet."));
}
