// Where signing in sends the viewer next: the `next` parameter, only when it stays on this
// site. Never an open redirect.

// `search` is location.search, `origin` location.origin. The parameter is resolved exactly
// as the browser would resolve it when navigating, so every trick ("/\evil.example",
// "/%09/evil.example" (tabs are dropped), "//evil", "https:evil", encoded variants) shows
// up as another origin and is refused; what stays is returned as an absolute URL on
// `origin`, never a bare path ("/.//evil.example" resolves to the path "//evil.example",
// which as a bare path would name another host again).
export function signInDestination(search, origin) {
  const next = new URLSearchParams(search).get("next");
  if (!next || !next.startsWith("/")) return "/";
  let url;
  try {
    url = new URL(next, origin);
  } catch {
    return "/";
  }
  // Credentials in the URL ("//evil.example@this-site") only ever serve to mislead.
  if (url.origin !== origin || url.username || url.password) return "/";
  return url.href;
}
