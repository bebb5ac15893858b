"""The media side's import arrows: mediaserver reaches control.api only where it builds
the app (node.py), and the ingest protocols (rtmp/, whip/) never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

MEDIASERVER = Path(__file__).resolve().parent.parent / "mediaserver"


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_only_the_composition_root_imports_the_api() -> None:
    offenders = sorted(
        str(path.relative_to(MEDIASERVER))
        for path in MEDIASERVER.rglob("*.py")
        if path.name != "node.py"
        and any(name == "control.api" or name.startswith("control.api.")
                for name in imports_of(path))
    )
    assert offenders == []


def test_protocol_packages_do_not_import_each_other() -> None:
    for package, sibling in (("rtmp", "whip"), ("whip", "rtmp")):
        for path in (MEDIASERVER / package).rglob("*.py"):
            names = imports_of(path)
            assert not any(name == f"mediaserver.{sibling}"
                           or name.startswith(f"mediaserver.{sibling}.") for name in names), path
