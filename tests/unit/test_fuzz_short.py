"""A short fuzzing run of every parser target (scripts/fuzz), and a replay of the committed
corpora: no input may escape with anything but its parser's documented error, and replaying
the corpus twice must not grow memory.

Each target runs under atheris in a subprocess for a bounded number of inputs with a fixed
seed (a few seconds each); the million-input runs are the README's commands, not this test.
The per-input timeout here is generous (10 s, the long runs use 1 s) so a busy machine
cannot fail it: a parser that loops forever still does.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "scripts" / "fuzz"
sys.path.insert(0, str(FUZZ))

from fuzz_targets import CORPUS, TARGETS, load  # noqa: E402
from replay import GROWTH_LIMIT, growth, inputs  # noqa: E402

RUNS = 3000


def rss_limit_mb() -> int:
    """libFuzzer's 1 GiB budget on top of this process's peak: Linux carries a parent's
    peak RSS (getrusage's ru_maxrss) into a child across exec, and libFuzzer reads that,
    so a late test in a long pytest run was refused before its first input."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return peak_mb + 1024


@pytest.mark.parametrize("target", TARGETS)
def test_short_fuzz_run_finds_nothing(target: str, tmp_path: Path) -> None:
    command = [
        sys.executable, str(FUZZ / "run.py"), target, f"-atheris_runs={RUNS}", "-seed=1",
        "-timeout=10", f"-rss_limit_mb={rss_limit_mb()}", f"-artifact_prefix={tmp_path}/",
        str(tmp_path / "new"),
        str(CORPUS / target),
    ]
    (tmp_path / "new").mkdir()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert f"Done {RUNS} in" in done.stderr
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_replays_without_memory_growth(target: str) -> None:
    data = inputs([CORPUS / target])
    assert len(data) >= 5  # the committed seeds, minimised corpus and past findings
    assert growth(load(target), data) <= GROWTH_LIMIT
