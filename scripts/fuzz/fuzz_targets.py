"""The fuzz targets by name, and their libFuzzer options (shared by run.py and the tests).

Each target is a module `fuzz_<name>` with `check(data: bytes) -> None`, which lets only its
documented protocol errors pass silently: anything that escapes it is a finding.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
DICTS = HERE / "dicts"

# The largest input each target is given (libFuzzer -max_len): a few reads' worth.
MAX_LEN = {
    "handshake": 4096,
    "chunks": 8192,
    "amf0": 4096,
    "flv": 8192,
    "playlist": 4096,
    "storage_keys": 1024,
    "bodies": 2048,
    "cmaf": 8192,
}
TARGETS = tuple(MAX_LEN)
# The targets the issue asks a million inputs of.
LONG_RUN = ("handshake", "chunks", "amf0", "flv")


def load(name: str) -> Callable[[bytes], None]:
    """The target's check function (importing it imports the code it fuzzes)."""
    if name not in MAX_LEN:
        raise KeyError(f"unknown fuzz target {name!r}; one of {', '.join(TARGETS)}")
    check: Callable[[bytes], None] = importlib.import_module(f"fuzz_{name}").check
    return check
