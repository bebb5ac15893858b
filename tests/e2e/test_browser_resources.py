"""Course resources in a real browser (Debian's chromium, Playwright): the teacher uploads a
PDF through the teaching page, an enrolled student sees it on the course page and downloads
it (the bytes arrive whole, as an attachment), a student not in the course sees no file.
The control app runs on a real port over a storage folder; no page reports a
Content-Security-Policy violation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Dialog

from control.models import Role
from mediaserver.recording_store import RecordingStore
from mediaserver.resource_files import ResourceFiles
from support.browser import CHROMIUM, csp_violations, launch_chromium, screenshot, sign_in
from support.page_school import PASSWORD, PageSchool, page_school
from transcode.storage.local import LocalStorage

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
PDF = b"%PDF-1.4\n% Week 1 slides\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"
PEOPLE = {"admin": Role.ADMIN, "tess": Role.TEACHER, "sam": Role.STUDENT, "una": Role.STUDENT}


@pytest.fixture
def media(tmp_path: Path) -> LocalStorage:
    """The storage folder course files land in."""
    return LocalStorage(tmp_path / "media")


@pytest.fixture
async def school(tmp_path: Path, media: LocalStorage) -> AsyncIterator[PageSchool]:
    async with page_school(tmp_path, PEOPLE, media_store=RecordingStore(media),
                           resource_store=ResourceFiles(media, tmp_path / "spool")) as school:
        yield school


@pytest.fixture
def slides(tmp_path: Path) -> Path:
    path = tmp_path / "week1.pdf"
    path.write_bytes(PDF)
    return path


@pytest.fixture
def disguised(tmp_path: Path) -> Path:
    """A web page dressed as a PDF."""
    path = tmp_path / "evil.pdf"
    path.write_bytes(b"<!doctype html><script>alert(document.cookie)</script>")
    return path


def read(path: Path) -> bytes:
    return path.read_bytes()


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def test_teacher_uploads_enrolled_student_downloads_outsider_sees_nothing(
    school: PageSchool, media: LocalStorage, slides: Path, disguised: Path, tmp_path: Path,
) -> None:
    category = await school.call("POST", "/categories/", "admin", {"name": "Maths"}, 201)
    course = await school.call("POST", "/courses/", "tess", {
        "title": "Group theory", "category_id": category["id"], "access_level": "private",
        "capacity": 10}, 201)
    cid = course["id"]
    await school.call("POST", f"/courses/{cid}/enroll-student", "tess",
                      {"student_id": school.ids["sam"]}, 201)
    base = school.base
    async with launch_chromium() as chromium:
        # The teacher attaches the slides to the course.
        teacher = await (await chromium.new_context()).new_page()
        refused = csp_violations(teacher)
        await sign_in(teacher, base, "tess", PASSWORD, f"/teach?course={cid}")
        await teacher.locator("#new-resource").wait_for()
        # A refused file says why, and nothing is kept.
        await teacher.set_input_files("#resource-file", str(disguised))
        await teacher.click("#new-resource button[type=submit]")
        alert = teacher.locator("#resource-status [role=alert]")
        await alert.wait_for()
        assert "HTML" in (await alert.text_content() or "")
        assert await media.list("resources/") == []
        await teacher.set_input_files("#resource-file", str(slides))
        await teacher.fill("#resource-title", "Week 1 slides")
        await teacher.click("#new-resource button[type=submit]")
        item = teacher.locator("#resource-list li.resource")
        await item.first.wait_for()
        assert "Week 1 slides" in (await item.first.text_content() or "")
        await screenshot(teacher, "resources-teacher.png")
        [key] = await media.list("resources/")
        assert key.startswith(f"resources/{cid}/")

        # The enrolled student sees it and downloads it, bytes intact.
        student = await (await chromium.new_context(accept_downloads=True)).new_page()
        refused += csp_violations(student)
        await sign_in(student, base, "sam", PASSWORD, f"/learn/{cid}")
        listed = student.locator("#resource-list li.resource")
        await listed.first.wait_for()
        assert "Week 1 slides" in (await listed.first.text_content() or "")
        await screenshot(student, "resources-student.png")
        async with student.expect_download() as waiting:
            await listed.first.locator("button.download-resource").click()
        download = await waiting.value
        assert download.suggested_filename == "week1.pdf"
        saved = tmp_path / "saved.pdf"
        await download.save_as(str(saved))
        assert await asyncio.to_thread(read, saved) == PDF

        # A student not in the course sees no file.
        outsider = await (await chromium.new_context()).new_page()
        refused += csp_violations(outsider)
        await sign_in(outsider, base, "una", PASSWORD, f"/learn/{cid}")
        await outsider.locator("#resources-closed").wait_for()
        assert await outsider.locator("#resource-list").count() == 0

        # The teacher deletes it from the page.
        teacher.once("dialog", accept)
        await item.first.locator("button.delete-resource").click()
        await teacher.locator("#resource-files p.meta").wait_for()
        assert await media.list("resources/") == []
    assert refused == []
