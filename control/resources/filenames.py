"""An uploaded file's name made safe to keep and to send back: no folders, no control
characters, nothing a header or a file system reads specially. The name is only ever
shown and offered for the download (Content-Disposition); storage keys never contain it.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

__all__ = ["content_disposition", "extension_of", "safe_filename"]

_MAX_CHARS = 120
# Letters and digits of any script, and a few harmless marks; the rest become "_".
_UNSAFE = re.compile(r"[^\w .()+\-\u2010-\u2015]")
_RUNS = re.compile(r"[_ ]{2,}")


def safe_filename(name: str) -> str:
    """The last path component of `name`, cleaned; "file" when nothing is left."""
    base = re.split(r"[/\\]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C")
    base = _RUNS.sub("_", _UNSAFE.sub("_", base)).strip(" ._")
    if len(base) > _MAX_CHARS:
        _stem, dot, ext = base.rpartition(".")
        keep = ext if dot and len(ext) <= 10 else ""
        base = base[: _MAX_CHARS - len(keep) - 1].rstrip(" ._") + ("." + keep if keep else "")
    return base or "file"


def extension_of(name: str) -> str:
    """The lower-case extension without its dot ("" for none)."""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def content_disposition(filename: str) -> str:
    """Always an attachment: an ASCII fallback name, and the real one per RFC 5987."""
    fallback = filename.encode("ascii", "replace").decode("ascii").replace("?", "_")
    fallback = fallback.replace('"', "_").replace("\\", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
