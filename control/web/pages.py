"""The web pages: static HTML shells at paths of their own, and the assets they load.

Each page is one HTML file whose module script calls the JSON API with the bearer token
kept in the browser, so a page is the same bytes for every viewer and caches well. Page
paths never shadow the API's: the API lives under /auth, /courses/, /sessions/ ...,
the pages under /, /learn/, /embed/, /signin, /register, /teach, /admin, assets under
/assets/.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

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
}
# Only the player is meant to be framed by other sites.
FRAMEABLE = frozenset({"embed.html"})


def _page(file: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    headers = {
        # Revalidate with the ETag each time: pages are tiny, and a deploy shows at once.
        "Cache-Control": "no-cache",
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
    }
    if file.name not in FRAMEABLE:
        headers["X-Frame-Options"] = "DENY"

    async def serve(_request: web.Request) -> web.StreamResponse:
        # FileResponse reads the file off the event loop.
        return web.FileResponse(file, headers=headers)

    return serve


def add_page_routes(app: web.Application) -> None:
    """Register every page and the /assets/ folder on the API's application."""
    for path, name in PAGES.items():
        app.router.add_get(path, _page(STATIC_DIR / name))
    app.router.add_static(ASSETS_PREFIX, STATIC_DIR, show_index=False, follow_symlinks=False)
