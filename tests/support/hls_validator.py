"""A strict outside check of HLS playlists: hls-parser (npm) in strict mode, plus rules.

`validate_playlists` runs one node process (tests/support/validate_hls.mjs) over every
playlist given; master and media playlists are told apart by their tags. hls-parser is
installed into var/npm by `make assets` at the version the Makefile pins. The script
adds the Low-Latency and master-playlist rules hls-parser leaves out (its messages start
with "harness:"). Without node the calling test is skipped; a missing hls-parser is a
failure, since `make test` installs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("validate_hls.mjs")
HLS_PARSER = ROOT / "var" / "npm" / "node_modules" / "hls-parser"

__all__ = ["validate_playlists"]


def problems(texts: Mapping[str, str]) -> dict[str, list[str]]:
    """Every playlist's problems by name (an empty list: valid)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (HLS_PARSER / "package.json").is_file():
        pytest.fail(f"hls-parser is missing from {HLS_PARSER}: run `make assets`")
    done = subprocess.run([node, str(SCRIPT), str(HLS_PARSER)], input=json.dumps(dict(texts)),
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"validate_hls.mjs failed: {done.stderr[-3000:]}")
    found: dict[str, list[str]] = json.loads(done.stdout)
    return found


def validate_playlists(texts: Mapping[str, str]) -> None:
    """Raise AssertionError naming each playlist that is not valid, with the reasons."""
    rejected = {name: found for name, found in problems(texts).items() if found}
    if rejected:
        raise AssertionError("invalid playlists:\n" + "\n".join(
            f"{name}: {'; '.join(found)}\n{texts[name]}" for name, found in rejected.items()))
