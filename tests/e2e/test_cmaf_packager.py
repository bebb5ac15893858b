"""The CMAF packager on Debian ffmpeg's own fragmented MP4 (the LL-HLS muxer flags), fed
in random chunks: parts of about 200 ms, segments starting independent on the 2 s grid
(4 s GOPs of a passthrough-like source cut at every keyframe), durations adding up to what
ffprobe reads, Init + one segment decoding with PyAV, two rungs of one ffmpeg cutting at
the same starts, and what ffmpeg 5.1 does with AAC's priming frame."""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

from transcode.cmaf.boxes import BoxSplitter
from transcode.cmaf.packager import CmafPackager, Init, Part

FFMPEG = Path("/usr/bin/ffmpeg")
FFPROBE = Path("/usr/bin/ffprobe")
pytestmark = pytest.mark.skipif(
    not (FFMPEG.exists() and FFPROBE.exists()), reason="needs Debian's ffmpeg"
)

FRAG_SECONDS = 0.183  # -frag_duration 183000 (microseconds)
MOVFLAGS = ["-movflags", "+frag_keyframe+empty_moov+default_base_moof+cmaf+skip_trailer",
            "-frag_duration", "183000"]
SEGMENT = 2.0


def video_input(fps: int, size: str = "320x240") -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}"]


AUDIO_INPUT = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
FORCED = ["-force_key_frames", "expr:gte(t,n_forced*2)"]
AAC = ["-c:a", "aac", "-b:a", "64k", "-ar", "48000"]


def run_ffmpeg(args: list[str]) -> str:
    done = subprocess.run([str(FFMPEG), "-hide_banner", "-nostdin", "-loglevel", "warning",
                           "-y", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def ffprobe_duration(path: Path, stream: str) -> float:
    done = subprocess.run(
        [str(FFPROBE), "-v", "error", "-select_streams", stream, "-show_entries",
         "stream=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return float(done.stdout.strip())


@dataclass
class Packaged:
    init: bytes
    parts: list[Part]

    @property
    def segments(self) -> list[list[Part]]:
        out: list[list[Part]] = []
        for part in self.parts:
            if part.new_segment:
                out.append([])
            out[-1].append(part)
        return out

    def segment_starts(self) -> list[float]:
        return [round(segment[0].start, 4) for segment in self.segments]

    def segment_durations(self) -> list[float]:
        return [round(sum(p.duration for p in s), 4) for s in self.segments]


def package(data: bytes, seed: int) -> Packaged:
    """`data` fed in random chunks, from single bytes to 64 KiB."""
    rng = random.Random(seed)
    packager = CmafPackager(SEGMENT)
    items: list[Init | Part] = []
    offset = 0
    while offset < len(data):
        size = rng.choice([1, 7, rng.randint(1, 500), rng.randint(500, 65536)])
        items += packager.feed(data[offset : offset + size])
        offset += size
    items += packager.close()
    inits = [i for i in items if isinstance(i, Init)]
    assert len(inits) == 1 and items[0] is inits[0]
    parts = [i for i in items if isinstance(i, Part)]
    # Nothing lost or reordered: ffmpeg writes only ftyp, moov and moof+mdat pairs here.
    assert inits[0].data + b"".join(p.data for p in parts) == data
    assert [b.type for b in BoxSplitter().feed(inits[0].data)] == ["ftyp", "moov"]
    return Packaged(inits[0].data, parts)


def check_common(packaged: Packaged, part_cap: float) -> None:
    assert packaged.parts[0].new_segment
    for segment in packaged.segments:
        assert segment[0].independent
    for before, after in zip(packaged.parts, packaged.parts[1:], strict=False):
        assert after.start == pytest.approx(before.start + before.duration, abs=1e-6)
    for part in packaged.parts:
        assert 0 < part.duration <= part_cap + 1e-6


def decode(path: Path, packaged: Packaged, index: int) -> dict[str, tuple[int, int, int]]:
    """(frames, width, height) per stream kind of Init + segment `index`'s parts."""
    path.write_bytes(packaged.init + b"".join(p.data for p in packaged.segments[index]))
    found: dict[str, tuple[int, int, int]] = {}
    with av.open(str(path)) as container:
        for frame in container.decode(*container.streams):
            kind = "video" if isinstance(frame, av.VideoFrame) else "audio"
            frames, width, height = found.get(kind, (0, 0, 0))
            if isinstance(frame, av.VideoFrame):
                width, height = frame.width, frame.height
            found[kind] = (frames + 1, width, height)
    return found


@pytest.mark.parametrize(("fps", "seconds"), [(30, 7), (25, 6.4)])
def test_video_with_forced_keyframes_cuts_exactly_on_the_grid(
    tmp_path: Path, fps: int, seconds: float
) -> None:
    out = tmp_path / "v.mp4"
    run_ffmpeg([*video_input(fps), "-t", str(seconds), *X264, *FORCED, "-g", str(2 * fps),
                "-f", "mp4", *MOVFLAGS, str(out)])
    packaged = package(out.read_bytes(), seed=fps)
    check_common(packaged, part_cap=0.2)  # 0.183 s rounded up to a frame, both rates
    count = int(seconds // SEGMENT) + 1
    assert packaged.segment_starts() == [SEGMENT * k for k in range(count)]
    durations = packaged.segment_durations()
    assert durations[:-1] == [SEGMENT] * (count - 1)
    assert sum(p.duration for p in packaged.parts) == pytest.approx(
        ffprobe_duration(out, "v:0"), abs=1e-3)
    assert decode(tmp_path / "seg.mp4", packaged, 1) == {"video": (2 * fps, 320, 240)}
    assert decode(tmp_path / "last.mp4", packaged, count - 1)["video"][0] == round(
        durations[-1] * fps)


def test_audio_only_cuts_on_the_grid_within_a_part(tmp_path: Path) -> None:
    out = tmp_path / "a.mp4"
    stderr = run_ffmpeg([*AUDIO_INPUT, "-t", "9", *AAC, "-f", "mp4", *MOVFLAGS, str(out)])
    assert "nonzero dts -1024" in stderr  # the AAC priming frame: see the last test
    packaged = package(out.read_bytes(), seed=3)
    frame = 1024 / 48000
    part_cap = frame * -(-FRAG_SECONDS // frame)  # 9 AAC frames: 0.192 s
    check_common(packaged, part_cap)
    assert all(p.independent for p in packaged.parts)
    starts = packaged.segment_starts()
    assert len(starts) == 5
    for k, start in enumerate(starts):
        # the first part reaching the boundary (less the 0.1 s tolerance) starts a segment
        assert 2 * k - 0.1 <= start < 2 * k - 0.1 + part_cap
    for duration in packaged.segment_durations()[:-1]:
        assert duration == pytest.approx(SEGMENT, abs=part_cap)
    assert sum(p.duration for p in packaged.parts) == pytest.approx(
        ffprobe_duration(out, "a:0"), abs=1e-3)
    segment = packaged.segments[1]
    frames = round(sum(p.duration for p in segment) / frame)
    assert decode(tmp_path / "seg.mp4", packaged, 1) == {"audio": (frames, 0, 0)}


def test_muxed_long_gop_cuts_at_each_keyframe_after_the_boundary(tmp_path: Path) -> None:
    # A passthrough source with 4 s GOPs (as `-c copy` of a publisher's stream would be):
    # the 2 s grid can only cut at its keyframes, so every segment is 4 s long.
    out = tmp_path / "va.mp4"
    run_ffmpeg([*video_input(30), *AUDIO_INPUT, "-t", "12.5", *X264, "-g", "120",
                "-sc_threshold", "0", *AAC, "-avoid_negative_ts", "make_zero",
                "-f", "mp4", *MOVFLAGS, str(out)])
    packaged = package(out.read_bytes(), seed=4)
    check_common(packaged, part_cap=0.2)
    # make_zero moved the video 1024 audio samples later (the AAC priming frame) and
    # stretched its first frame, so its keyframes are at 4 s + 21.3 ms...
    # (328 ticks of the video's 1/15360 s timescale).
    shift = 328 / 15360
    assert packaged.segment_starts() == pytest.approx([0.0, 4 + shift, 8 + shift, 12 + shift],
                                                      abs=1e-4)
    assert packaged.segment_durations()[:3] == pytest.approx([4 + shift, 4.0, 4.0], abs=1e-4)
    assert sum(p.duration for p in packaged.parts) == pytest.approx(
        ffprobe_duration(out, "v:0"), abs=1e-3)
    found = decode(tmp_path / "seg.mp4", packaged, 1)
    assert found["video"] == (120, 320, 240)
    assert found["audio"][0] == pytest.approx(4 * 48000 / 1024, abs=2)


def test_two_rungs_of_one_ffmpeg_cut_at_the_same_starts(tmp_path: Path) -> None:
    high, low = tmp_path / "high.mp4", tmp_path / "low.mp4"
    run_ffmpeg([
        "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30:duration=8.5",
        "-filter_complex", "[0:v]split=2[a][b];[b]scale=320:180[small]",
        "-map", "[a]", *X264, *FORCED, "-g", "60", "-f", "mp4", *MOVFLAGS, str(high),
        "-map", "[small]", *X264, *FORCED, "-g", "60", "-f", "mp4", *MOVFLAGS, str(low),
    ])
    rungs = [package(high.read_bytes(), seed=5), package(low.read_bytes(), seed=6)]
    for rung in rungs:
        check_common(rung, part_cap=0.2)
    assert rungs[0].segment_starts() == rungs[1].segment_starts() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert rungs[0].segment_durations() == rungs[1].segment_durations()
    assert decode(tmp_path / "s.mp4", rungs[1], 2) == {"video": (60, 320, 180)}


def test_aac_priming_and_the_avoid_negative_ts_option(tmp_path: Path) -> None:
    """ffmpeg 5.1 with +cmaf writes no edit list, so AAC's 1024-sample priming frame
    (dts -1024) cannot be hidden: by default the audio track is shifted to start at 0,
    21.3 ms late against the video, with a warning suggesting +delay_moov. That flag only
    silences the warning (same bytes: cmaf still forbids the edit list it would write).
    `-avoid_negative_ts make_zero` shifts both tracks together instead (video's first
    frame is stretched by 21.3 ms to keep its track starting at 0), keeping A/V sync at
    no latency cost."""
    args = [*video_input(30), *AUDIO_INPUT, "-t", "1", *X264, "-g", "30", *AAC,
            "-f", "mp4", *MOVFLAGS]
    default, delayed, zero = (tmp_path / f"{n}.mp4" for n in ("default", "delay", "zero"))
    assert "nonzero dts -1024" in run_ffmpeg([*args, str(default)])
    stderr = run_ffmpeg([*args, "-movflags",
                         "+frag_keyframe+empty_moov+default_base_moof+cmaf+skip_trailer"
                         "+delay_moov", str(delayed)])
    assert "nonzero dts" not in stderr
    assert delayed.read_bytes() == default.read_bytes()
    assert "nonzero dts" not in run_ffmpeg([*args, "-avoid_negative_ts", "make_zero",
                                            str(zero)])

    def second_video_pts(path: Path) -> float:
        done = subprocess.run(
            [str(FFPROBE), "-v", "error", "-select_streams", "v:0", "-show_entries",
             "packet=pts_time", "-of", "csv=p=0", str(path)],
            capture_output=True, text=True, check=True, timeout=60)
        return float(done.stdout.split()[1])

    assert second_video_pts(default) == pytest.approx(1 / 30, abs=1e-4)
    assert second_video_pts(zero) == pytest.approx(1 / 30 + 1024 / 48000, abs=1e-4)
    # The packager reads either: both tracks' parts start at 0.
    for path in (default, zero):
        packaged = package(path.read_bytes(), seed=7)
        assert packaged.parts[0].start == 0.0 and packaged.parts[0].independent
