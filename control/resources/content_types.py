"""What an uploaded file is, judged by its first bytes (the `filetype` library's magic
numbers, plus a plain-text check of our own), and whether that is a kind we keep.

The declared name must agree with the content: HTML renamed `.pdf`, or an executable
renamed anything, is refused (415). Markup is never accepted as text: a file whose first
character is `<` (HTML, SVG, XML) could be rendered by a browser that sniffs, and
resources are documents, not pages.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import filetype

from control.errors import ApiError

__all__ = ["HEAD_BYTES", "DetectedType", "detect_type"]

# filetype looks at most this far (zip-based office documents need the first entries).
HEAD_BYTES = 8192

# Detected content type -> the file name extensions it may carry.
_ALLOWED: dict[str, frozenset[str]] = {
    "application/pdf": frozenset({"pdf"}),
    "image/png": frozenset({"png"}),
    "image/jpeg": frozenset({"jpg", "jpeg"}),
    "image/gif": frozenset({"gif"}),
    "image/webp": frozenset({"webp"}),
    "application/msword": frozenset({"doc"}),
    "application/vnd.ms-excel": frozenset({"xls"}),
    "application/vnd.ms-powerpoint": frozenset({"ppt"}),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document":
        frozenset({"docx"}),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": frozenset({"xlsx"}),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation":
        frozenset({"pptx"}),
    "application/vnd.oasis.opendocument.text": frozenset({"odt"}),
    "application/vnd.oasis.opendocument.spreadsheet": frozenset({"ods"}),
    "application/vnd.oasis.opendocument.presentation": frozenset({"odp"}),
    "application/epub+zip": frozenset({"epub"}),
    "application/zip": frozenset({"zip"}),
    "audio/mpeg": frozenset({"mp3"}),
    "audio/ogg": frozenset({"ogg", "oga"}),
    "audio/mp4": frozenset({"m4a"}),
    "video/mp4": frozenset({"mp4", "m4v"}),
    "video/webm": frozenset({"webm"}),
}
# Plain text carries its own name: the extension says which text it is.
_TEXT_TYPES = {"txt": "text/plain", "md": "text/markdown", "markdown": "text/markdown",
               "csv": "text/csv"}


@dataclass(frozen=True)
class DetectedType:
    content_type: str
    extension: str  # the one to give a file named without an extension


def _refused(message: str, code: str = "unsupported_type") -> ApiError:
    return ApiError(415, code, message)


def _is_text(head: bytes, complete: bool) -> bool:
    """UTF-8 without NUL bytes (a multi-byte character cut at the head's end is fine)."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _looks_like_markup(head: bytes) -> bool:
    return head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"<")


def detect_type(head: bytes, extension: str, *, complete: bool) -> DetectedType:
    """The content type of a file starting with `head` (the whole file when `complete`),
    named with `extension` (lower case, no dot; "" for none), or 415 when it is no kind we
    keep or its name says otherwise."""
    kind = filetype.guess(head)
    if kind is not None:
        mime = str(kind.mime)
        extensions = _ALLOWED.get(mime)
        if extensions is None:
            raise _refused(f"files of type {mime} are not accepted")
        if extension and extension not in extensions:
            raise _refused(f"the file is {mime}, not .{extension}", "type_mismatch")
        return DetectedType(mime, sorted(extensions)[0])
    if not _is_text(head, complete) or _looks_like_markup(head):
        raise _refused("accepted: PDF, images, office documents, archives (zip), audio,"
                       " video and plain text; HTML and programs are not")
    if extension and extension not in _TEXT_TYPES:
        raise _refused(f"the file is plain text, not .{extension}", "type_mismatch")
    text_type = _TEXT_TYPES.get(extension, "text/plain")
    return DetectedType(f"{text_type}; charset=utf-8", extension or "txt")
