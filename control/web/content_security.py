"""What every HTML answer tells the browser it may do: the Content-Security-Policy and the
framing rule.

The pages are static shells whose module scripts call the JSON API, so the policy can be
strict: scripts and styles from this site only, never inline (an injected `<script>` or
`onclick=` does not run); media, posters and playlist requests also from the playback
origin (the public URL, which may differ from the address a page was opened on); hls.js
feeds the `<video>` through `blob:` URLs (MediaSource) and may run its demuxer in a `blob:`
worker; the chat WebSocket and WHIP's fetches go to this site. Framing: no page may be
framed (clickjacking), except the embeddable player, which exists to be put in an
`<iframe>` on any school's site (the API hands out that snippet) and offers nothing to
click but play and quality. Every HTML answer gets this, including anything under
/assets/: a page is protected however it is reached.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

__all__ = ["CSP_HEADER", "html_headers", "media_origins", "page_policy", "protect_html"]

CSP_HEADER = "Content-Security-Policy"


def media_origins(public_url: str) -> tuple[str, ...]:
    """The playback origin (http(s)) and its WebSocket twin, from the public URL; nothing
    when it is not an http(s) URL (then 'self' alone must do)."""
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ()
    # netloc carries nothing a header could choke on once it parsed as a URL's authority,
    # but a policy must never be cut open by a ';' or ',' from a setting.
    if any(c in parts.netloc for c in ";, \t\r\n'\"@"):
        return ()
    socket_scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{parts.scheme}://{parts.netloc}", f"{socket_scheme}://{parts.netloc}"


def page_policy(public_url: str, *, frameable: bool) -> str:
    """The Content-Security-Policy of a page; `frameable` lets any site frame it."""
    media = media_origins(public_url)

    def sources(*items: str) -> str:
        return " ".join(item for item in items if item)

    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src " + sources("'self'", *media[:1]),
        "media-src " + sources("'self'", *media[:1], "blob:"),
        "connect-src " + sources("'self'", *media),
        "worker-src 'self' blob:",
        "font-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-src 'none'",
        "frame-ancestors *" if frameable else "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def html_headers(public_url: str, *, frameable: bool) -> dict[str, str]:
    """CSP plus the older X-Frame-Options for browsers without frame-ancestors."""
    headers = {CSP_HEADER: page_policy(public_url, frameable=frameable)}
    if not frameable:
        headers["X-Frame-Options"] = "DENY"
    return headers


def protect_html(app: web.Application, public_url: str) -> None:
    """Give every HTML answer of `app` that has no policy of its own the strict one (not
    frameable): static files, error pages, anything a future route serves."""
    strict = html_headers(public_url, frameable=False)

    async def on_prepare(_request: web.Request, response: web.StreamResponse) -> None:
        # Checked when the headers go out: a FileResponse sets its type only then.
        if not response.headers.get("Content-Type", "").startswith("text/html"):
            return
        if CSP_HEADER not in response.headers:
            response.headers.update(strict)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")

    app.on_response_prepare.append(on_prepare)
