"""What an uploaded course file is, read from its bytes (control/resources/content_types.py),
and how its name is made safe (filenames.py): pure functions, no server."""

from __future__ import annotations

import io
import zipfile

import pytest

from control.errors import ApiError
from control.resources.content_types import detect_type
from control.resources.filenames import content_disposition, extension_of, safe_filename


def zipped(*entries: tuple[str, bytes], stored_first: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, data) in enumerate(entries):
            method = zipfile.ZIP_STORED if stored_first and index == 0 else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    return out.getvalue()


DOCX = zipped(("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w:document/>"))
ODT = zipped(("mimetype", b"application/vnd.oasis.opendocument.text"),
             ("content.xml", b"<office:document-content/>"), stored_first=True)
ZIP = zipped(("exercise1.py", b"print(1)\n"))


@pytest.mark.parametrize(("head", "extension", "content_type"), [
    (b"%PDF-1.7\n...", "pdf", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 16, "png", "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg", "image/jpeg"),
    (DOCX, "docx",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (ODT, "odt", "application/vnd.oasis.opendocument.text"),
    (ZIP, "zip", "application/zip"),
    (b"# Week 1\n\n* groups\n", "md", "text/markdown; charset=utf-8"),
    ("Übung: ∀x\n".encode(), "txt", "text/plain; charset=utf-8"),
    (b"a,b\n1,2\n", "csv", "text/csv; charset=utf-8"),
    (b"no name at all", "", "text/plain; charset=utf-8"),
])
def test_accepted_kinds(head: bytes, extension: str, content_type: str) -> None:
    assert detect_type(head, extension, complete=True).content_type == content_type


@pytest.mark.parametrize(("head", "extension", "code"), [
    (b"<!doctype html><title>x</title>", "pdf", "unsupported_type"),
    (b"\xef\xbb\xbf  <html>", "txt", "unsupported_type"),  # a BOM does not hide markup
    (b"<?xml version='1.0'?><svg/>", "txt", "unsupported_type"),
    (b"MZ\x90\x00" + b"\x00" * 60, "pdf", "unsupported_type"),
    (b"\x7fELF\x02\x01\x01" + b"\x00" * 60, "", "unsupported_type"),
    (b"\x00\x01\x02binary", "txt", "unsupported_type"),
    (b"%PDF-1.7", "docx", "type_mismatch"),
    (DOCX, "pdf", "type_mismatch"),
    (b"plain words", "exe", "type_mismatch"),
])
def test_refused(head: bytes, extension: str, code: str) -> None:
    with pytest.raises(ApiError) as refused:
        detect_type(head, extension, complete=True)
    assert (refused.value.status, refused.value.code) == (415, code)


def test_a_character_cut_by_the_head_is_still_text() -> None:
    head = "é".encode() * 10 + "é".encode()[:1]
    assert detect_type(head, "txt", complete=False).content_type.startswith("text/plain")
    with pytest.raises(ApiError):
        detect_type(head, "txt", complete=True)  # the whole file ends mid-character


@pytest.mark.parametrize(("given", "kept"), [
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\notes.pdf", "notes.pdf"),
    ("report\x00.pdf\r\n", "report.pdf"),
    ('a"b;c.pdf', "a_b_c.pdf"),
    ("...", "file"),
    ("", "file"),
    ("Übungsblatt – 1.pdf", "Übungsblatt – 1.pdf"),  # noqa: RUF001 (an en dash on purpose)
    ("x" * 300 + ".pdf", "x" * 116 + ".pdf"),  # 120 characters at most
])
def test_safe_filenames(given: str, kept: str) -> None:
    assert safe_filename(given) == kept


def test_extensions_and_the_attachment_header() -> None:
    assert extension_of("Slides.PDF") == "pdf"
    assert extension_of(".bashrc") == "" and extension_of("README") == ""
    header = content_disposition("Übung 1.pdf")
    assert header == ("attachment; filename=\"_bung 1.pdf\"; "
                      "filename*=UTF-8''%C3%9Cbung%201.pdf")
