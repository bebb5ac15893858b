"""The player's catch-up with the live edge (control/web/static/live_catch_up.js), run in node.

hls.js's own catch-up wants a second buffered ahead, which 200 ms parts never give: a
player that started late stayed half a second behind its target for the whole class. These
check the rule that replaced it: faster only while behind the target, never with less than
a part and a half buffered (no stall of its own making), never for a viewer watching the
past on purpose, and never over a speed the viewer chose.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

MODULE = Path(__file__).parents[2] / "control" / "web" / "static" / "live_catch_up.js"

# Fakes for hls.js and the <video> element: enough for LiveCatchUp.update().
HARNESS = """
import { catchUpRate, LiveCatchUp } from %(module)s;
const cases = JSON.parse(%(cases)s);
const rates = cases.rates.map(([d, ahead, part, target]) => catchUpRate(d, ahead, part, target));
function fakes(latency, rate) {
  const video = { playbackRate: rate, paused: false, currentTime: 10,
                  buffered: { length: 1, end: () => 10.8 },
                  addEventListener() {}, removeEventListener() {} };
  const hls = { latestLevelDetails: { live: true, partTarget: 0.2, targetduration: 2 },
                targetLatency: 0.6, latency };
  return { hls, video, catchUp: new LiveCatchUp(hls, video) };
}
const behind = fakes(1.05, 1);
behind.catchUp.update();
const sped = behind.video.playbackRate;
behind.hls.latency = 0.62;
behind.catchUp.update();
const settled = behind.video.playbackRate;
const chosen = fakes(1.05, 1);
chosen.video.playbackRate = 1.5;  // the viewer's own choice, in the video's menu
chosen.catchUp.update();
const kept = chosen.video.playbackRate;
chosen.catchUp.detach();
console.log(JSON.stringify({ rates, sped, settled, kept, detached: chosen.video.playbackRate }));
"""


def run(rates: list[tuple[float, float, float, float]]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = HARNESS % {"module": json.dumps(MODULE.as_uri()),
                        "cases": json.dumps(json.dumps({"rates": rates}))}
    done = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_the_player_speeds_up_only_while_behind_with_a_buffer_to_spend() -> None:
    answer = run([
        (0.03, 0.8, 0.2, 2),   # at the target: normal speed
        (0.45, 0.8, 0.2, 2),   # half a second behind, 0.8 s buffered: a little faster
        (0.45, 0.25, 0.2, 2),  # behind, but less than 1.5 parts buffered: no faster
        (2.5, 5.0, 0.2, 2),    # further back than a target duration: the past, on purpose
        (0.45, 0.8, 0, 6),     # no parts (plain HLS): hls.js's rule, a second ahead
        (0.45, 1.2, 0, 6),
        (0.9, 0.8, 0.2, 2),    # further behind: faster, up to 15%
    ])
    at_target, behind, thin, past, plain_thin, plain, far = answer["rates"]
    assert at_target == 1 and thin == 1 and past == 1 and plain_thin == 1
    assert 1 < behind <= far <= 1.15
    assert 1 < plain <= 1.15


def test_the_rate_returns_to_normal_at_the_target_and_a_viewers_speed_is_theirs() -> None:
    answer = run([])
    assert 1 < answer["sped"] <= 1.15
    assert answer["settled"] == 1
    assert answer["kept"] == 1.5 and answer["detached"] == 1.5
