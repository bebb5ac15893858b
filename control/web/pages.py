"""The web pages: static HTML shells at paths of their own, and the assets they load.

Each page is one HTML file whose module script calls the JSON API with the bearer token
kept in the browser, so a page is the same bytes for every viewer and caches well. Page
paths never shadow the API's: the API lives under /auth, /courses/, /sessions/ ...,
the pages under /, /learn/, /embed/, /signin, /register, /teach, /admin, /notifications,
/unsubscribe, assets under
/assets/.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from control.web.content_security import html_headers, protect_html

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PREFIX = "/assets"

# Path -> the HTML file that answers it. Ids match digits only, like the API's.
PAGES: dict[str, str] = {
    "/": "home.html",
    "/signin": "signin.html",
    "/register": "register.html",
    "/learn/{course_id:\\d+}": "course.html",
    "/embed/{course_id:\\d+}": "embed.html",
    "/teach": "teach.html",
    "/admin": "admin.html",
    "/notifications": "notifications.html",
    "/unsubscribe": "unsubscribe.html",
}
# Only the player is meant to be framed by other sites (see content_security), and only at
# its page path: under /assets/ it is as unframeable as the rest.
FRAMEABLE = frozenset({"embed.html"})


def _page(
    file: Path, public_url: str
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    headers = {
        # Revalidate with the ETag each time: pages are tiny, and a deploy shows at once.
        "Cache-Control": "no-cache",
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
        **html_headers(public_url, frameable=file.name in FRAMEABLE),
    }

    async def serve(_request: web.Request) -> web.StreamResponse:
        # FileResponse reads the file off the event loop.
        return web.FileResponse(file, headers=headers)

    return serve


def add_page_routes(app: web.Application, public_url: str) -> None:
    """Register every page and the /assets/ folder on the API's application; every HTML
    answer (a page, or a shell fetched under /assets/) carries the content security policy.
    `public_url` is where playback media comes from."""
    for path, name in PAGES.items():
        app.router.add_get(path, _page(STATIC_DIR / name, public_url))
    app.router.add_static(ASSETS_PREFIX, STATIC_DIR, show_index=False, follow_symlinks=False)
    protect_html(app, public_url)
