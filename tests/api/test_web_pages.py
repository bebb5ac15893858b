"""The web pages as the app serves them: each page path answers its HTML, the assets it
loads are served with the right types, the JSON API keeps every path it had, and the
browser code never turns user text into HTML.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from control.app import build_app
from control.db.database import Database
from control.web.pages import ASSETS_PREFIX, PAGES, STATIC_DIR

PAGE_PATHS = {
    "/": "home.js",
    "/signin": "signin.js",
    "/register": "register.js",
    "/learn/7": "course.js",
    "/embed/7": "embed.js",
    "/teach": "teach.js",
    "/admin": "admin.js",
    "/notifications": "notifications.js",
    "/unsubscribe": "unsubscribe.js",
}
HLS_JS = "/assets/vendor/hls.min.js"


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings,
                 tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'web.sqlite3'}")
    await database.create_all()
    try:
        yield await aiohttp_client(build_app(settings, database))
    finally:
        await database.close()


def test_every_page_is_tested() -> None:
    assert len(PAGES) == len(PAGE_PATHS)


async def test_each_page_answers_html_that_loads_its_script(
    client: TestClient[Any, Any],
) -> None:
    for path, script in PAGE_PATHS.items():
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == "text/html", path
        html = await response.text()
        assert f'<script type="module" src="/assets/{script}"></script>' in html, path
        assert '<meta name="viewport"' in html
        # Every script and stylesheet the page names is served, with a type browsers accept.
        for asset in re.findall(r'(?:src|href)="(/assets/[^"]+)"', html):
            if asset == HLS_JS:
                continue  # installed by `make assets`, checked below
            served = await client.get(asset)
            assert served.status == 200, asset
            expected = "text/css" if asset.endswith(".css") else "javascript"
            assert expected in served.content_type, (asset, served.content_type)


async def test_ids_in_page_paths_are_digits(client: TestClient[Any, Any]) -> None:
    for path in ("/learn/abc", "/embed/1x", "/learn/", "/nowhere"):
        assert (await client.get(path)).status == 404, path


async def test_every_module_a_script_imports_is_served(client: TestClient[Any, Any]) -> None:
    for module in STATIC_DIR.glob("*.js"):
        for imported in re.findall(r'from "\./([\w-]+\.js)"', module.read_text()):
            assert (await client.get(f"/assets/{imported}")).status == 200, (module, imported)


async def test_the_player_library_is_installed_and_served(client: TestClient[Any, Any]) -> None:
    response = await client.get(HLS_JS)
    assert response.status == 200, "hls.js is missing: run `make assets`"
    assert "javascript" in response.content_type
    assert b"Hls" in await response.read()


async def test_the_api_keeps_its_paths(client: TestClient[Any, Any]) -> None:
    response = await client.get("/courses/")
    assert response.status == 200 and response.content_type == "application/json"
    assert (await response.json())["results"] == []
    missing = await client.get("/courses/7/")
    assert missing.status == 404 and missing.content_type == "application/json"
    assert "error" in await missing.json()
    document = await (await client.get("/openapi.json")).json()
    page_roots = {"/" + path.split("/")[1] for path in PAGES if path != "/"}
    api_roots = {"/" + path.split("/")[1] for path in document["paths"]}
    assert page_roots.isdisjoint(api_roots) and "/assets" not in api_roots


def _policy(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in directives, name
        directives[name] = sources
    return directives


def _html_answers() -> list[str]:
    """Every path that answers HTML: the pages, and each shell as a file under /assets/."""
    shells = sorted(f"{ASSETS_PREFIX}/{f.relative_to(STATIC_DIR)}"
                    for f in STATIC_DIR.rglob("*.htm*"))
    assert len(shells) >= len(PAGES)
    return [*PAGE_PATHS, *shells]


async def test_every_html_answer_has_a_strict_content_security_policy(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    for path in _html_answers():
        for method in ("GET", "HEAD"):
            response = await client.request(method, path)
            assert response.status == 200 and response.content_type == "text/html", path
            assert response.headers["X-Content-Type-Options"] == "nosniff", path
            policy = _policy(response.headers["Content-Security-Policy"])
            # Nothing runs that is not a file of this site: no inline code, no eval.
            assert policy["default-src"] == ["'none'"], path
            assert policy["script-src"] == ["'self'"], path
            assert policy["style-src"] == ["'self'"], path
            assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
            assert policy["form-action"] == ["'self'"], path
            # What the player and the chat need: blob: media and workers (hls.js), media
            # and its requests from the playback origin, the WebSocket to this site.
            assert "blob:" in policy["media-src"] and "blob:" in policy["worker-src"]
            assert settings.public_url in policy["media-src"]
            assert settings.public_url in policy["connect-src"]
            assert "ws://" + settings.public_url.split("://")[1] in policy["connect-src"]


async def test_only_the_embeddable_player_may_be_framed(client: TestClient[Any, Any]) -> None:
    """The player at /embed/ is made for other sites' iframes (the API hands out that
    snippet): any site may frame it. Every other page, and every HTML file under /assets/
    (the player's shell included), may be framed by no one."""
    embed = await client.get("/embed/3")
    assert "X-Frame-Options" not in embed.headers
    assert _policy(embed.headers["Content-Security-Policy"])["frame-ancestors"] == ["*"]
    for path in [p for p in _html_answers() if not p.startswith("/embed/")]:
        response = await client.get(path)
        assert response.headers["X-Frame-Options"] == "DENY", path
        policy = _policy(response.headers["Content-Security-Policy"])
        assert policy["frame-ancestors"] == ["'none'"], path


def test_pages_need_no_inline_code() -> None:
    """The policy forbids inline scripts, handlers and styles: the pages have none."""
    for page in STATIC_DIR.rglob("*.htm*"):
        html = page.read_text()
        for script in re.findall(r"<script\b[^>]*>", html, flags=re.IGNORECASE):
            assert re.search(r'\bsrc="/assets/', script), (page.name, script)
        assert not re.search(r"<script\b[^>]*>[^<]+</script>", html), page.name
        assert not re.search(r"\son[a-z]+\s*=", html, flags=re.IGNORECASE), page.name
        assert not re.search(r"\sstyle\s*=|<style\b", html, flags=re.IGNORECASE), page.name
        assert "javascript:" not in html.lower(), page.name


async def test_pages_revalidate_and_assets_carry_validators(
    client: TestClient[Any, Any],
) -> None:
    page = await client.get("/")
    assert page.headers["Cache-Control"] == "no-cache" and page.headers.get("ETag")
    again = await client.get("/", headers={"If-None-Match": page.headers["ETag"]})
    assert again.status == 304
    asset = await client.get("/assets/style.css")
    assert asset.headers.get("ETag") or asset.headers.get("Last-Modified")


def test_browser_code_never_renders_text_as_html() -> None:
    for module in STATIC_DIR.glob("*.js"):
        source = module.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in source, (module.name, sink)
