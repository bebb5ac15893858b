"""Runs one fuzz target under atheris (libFuzzer), with the code it fuzzes instrumented.

    .venv/bin/python scripts/fuzz/run.py TARGET [libFuzzer options] [corpus folders]

Without options it runs until stopped, with a 1 s per-input timeout, a 1 GiB RSS limit,
the target's -max_len and dictionary (dicts/), on a scratch folder plus the committed
corpus (new inputs go to the first folder, so the committed seeds stay as they are).
See README.md.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import atheris  # noqa: E402

from fuzz_targets import CORPUS, DICTS, MAX_LEN, load  # noqa: E402

# Instrument our own packages (coverage feedback), not the standard library or pydantic.
_OURS = ["config", "control", "mediaserver", "transcode"]


def libfuzzer_argv(name: str, args: list[str]) -> list[str]:
    """Our defaults, then the caller's options (libFuzzer takes the last of a repeated one)."""
    defaults = ["-timeout=1", "-rss_limit_mb=1024", f"-max_len={MAX_LEN[name]}"]
    words = DICTS / f"{name}.dict"
    if words.exists():
        defaults.append(f"-dict={words}")
    options = [a for a in args if a.startswith("-")]
    folders = [a for a in args if not a.startswith("-")]
    if not folders:
        folders = [tempfile.mkdtemp(prefix=f"fuzz-{name}-"), str(CORPUS / name)]
    # libFuzzer's -merge and -fork rerun argv[0] through the shell: make that rerun us.
    rerun = f"{sys.executable} {Path(__file__).resolve()} {name}"
    return [rerun, *defaults, *options, *folders]


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    name = sys.argv[1]
    # Warnings about refused input would flood libFuzzer's output; errors still show.
    logging.disable(logging.WARNING)
    with atheris.instrument_imports(include=_OURS):
        check = load(name)
    atheris.Setup(libfuzzer_argv(name, sys.argv[2:]), check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
