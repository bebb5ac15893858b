"""The sign-in page's `next` parameter never sends the viewer to another site.

The check runs in the browser (control/web/static/sign_in_destination.js); Node runs the
same module here, and Node's URL parser is the WHATWG one browsers navigate with, so each
hostile value is resolved as a browser would resolve it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from control.web.pages import STATIC_DIR

ORIGIN = "https://academia.example"

# Query strings as they arrive in location.search (raw: the page decodes them itself).
HOSTILE = [
    "?next=//evil.example",
    "?next=/\\evil.example",
    "?next=/%5Cevil.example",
    "?next=/%5C%5Cevil.example",
    "?next=%5C%5Cevil.example",
    "?next=/%09/evil.example",
    "?next=/\t/evil.example",
    "?next=/%0A/evil.example",
    "?next=/%0D%0A/evil.example",
    "?next=/%09%09/evil.example",
    "?next=%2F%2Fevil.example",
    "?next=/%2F/evil.example",
    "?next=/%2F%5Cevil.example",
    "?next=////evil.example",
    "?next=/\\/evil.example",
    "?next=//evil.example@academia.example",
    "?next=//%65vil.example",
    "?next=https://evil.example/",
    "?next=https:evil.example",
    "?next=https:%2F%2Fevil.example",
    "?next=http:/evil.example",
    "?next=javascript:alert(1)",
    "?next=%6Aavascript:alert(1)",
    "?next=data:text/html,hi",
    "?next=%20//evil.example",
    "?next=%09//evil.example",
    "?next=evil.example",
    "?next=//academia.example:pw@evil.example",
    "?next=//[::1]/",
]

# Same-site destinations keep working, resolved to absolute URLs on this origin.
BENIGN = {
    "": "/",
    "?next=": "/",
    "?next=/": f"{ORIGIN}/",
    "?next=%2Flearn%2F7": f"{ORIGIN}/learn/7",
    "?next=/teach?course=3": f"{ORIGIN}/teach?course=3",
    "?next=%2Flearn%2F7%3Fx%3D1%23chat": f"{ORIGIN}/learn/7?x=1#chat",
    "?registered=1&next=/admin": f"{ORIGIN}/admin",
    # Resolves to the path "//evil.example" on this site: harmless as an absolute URL.
    "?next=/.//evil.example": f"{ORIGIN}//evil.example",
    "?next=/%00/evil.example": f"{ORIGIN}/%00/evil.example",
}


def _destinations(searches: list[str], tmp_path: Path) -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is missing: `make test` installs npm, which brings it")
    # A copy named .mjs, so Node loads the browser's ES module as one.
    module = tmp_path / "sign_in_destination.mjs"
    module.write_text((STATIC_DIR / "sign_in_destination.js").read_text())
    script = (
        f"import {{ signInDestination }} from {json.dumps(module.as_uri())};\n"
        "const searches = JSON.parse(process.argv[1]);\n"
        f"console.log(JSON.stringify(searches.map((s) => signInDestination(s, "
        f"{json.dumps(ORIGIN)}))));\n"
    )
    run = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps(searches)],
        capture_output=True, text=True, timeout=30, check=True,
    )
    answers: list[str] = json.loads(run.stdout)
    return answers


def test_hostile_next_values_send_the_viewer_home(tmp_path: Path) -> None:
    answers = _destinations(HOSTILE, tmp_path)
    assert dict(zip(HOSTILE, answers, strict=True)) == dict.fromkeys(HOSTILE, "/")


def test_same_site_next_values_are_kept(tmp_path: Path) -> None:
    answers = _destinations(list(BENIGN), tmp_path)
    assert dict(zip(BENIGN, answers, strict=True)) == BENIGN


def test_the_sign_in_page_uses_the_check() -> None:
    source = (STATIC_DIR / "signin.js").read_text()
    assert 'from "./sign_in_destination.js"' in source
    assert "signInDestination(location.search, location.origin)" in source
