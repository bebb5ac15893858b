"""WHIP benchmark: CPU per WebRTC publisher at 720p30, and time from POST to first segment,
against an RTMP publish of the same media in the same run.

Each case starts its own `academia serve` (free ports, a temporary folder, ICE on
127.0.0.1 only), publishes one stream into it for `--duration` seconds after its first
segment, and measures the server's CPU (the process and all its ffmpeg children):

  whip   ladder       an aiortc client (aiortc's MediaPlayer reading the benchmark's
                      720p30 FLV in real time, sent as VP8 or H.264, and Opus)
  whip   passthrough  the same, with the ladder replaced by a remux: what is left is
                      mostly WebRTC receive + decode + our H.264/AAC re-encode
  rtmp   ladder       `ffmpeg -re -stream_loop -1 -i input.flv -c copy -f flv rtmp://...`
  rtmp   passthrough  the same, remuxed

so WebRTC's own cost ~ whip passthrough - rtmp passthrough, and the ladder's ~ rtmp ladder.
`--encoder` adds the re-encode alone (FrameEncoder on 10 s of the input, CPU time).
The client runs in this process (its decode and VP8 encode are not counted, but share the
machine's cores). Everything it starts is stopped at the end.

    .venv/bin/python scripts/bench/whip.py [--duration 30] [--codec VP8|H264]
        [--cases whip-ladder,whip-passthrough,rtmp-ladder,rtmp-passthrough] [--encoder]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for _path in (HERE, REPO):  # our helpers, the project
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aiohttp  # noqa: E402
import av  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer  # noqa: E402
from child_processes import Children  # noqa: E402
from hls_watch import fetch, parse_media_playlist  # noqa: E402
from ingest_servers import Academia  # noqa: E402
from rtmp_publishers import make_input, start_publisher  # noqa: E402
from tree_cpu import machine_busy_seconds, tree_cpu_total  # noqa: E402

from mediaserver.whip.frame_encoder import FrameEncoder  # noqa: E402
from mediaserver.whip.ice_addresses import restrict_host_addresses  # noqa: E402

CASES = ("whip-ladder", "whip-passthrough", "rtmp-ladder", "rtmp-passthrough")


@dataclass
class Figures:
    case: str
    first_segment_s: float | None
    cpu_cores: float | None  # server CPU seconds per second while publishing
    machine_busy: float | None  # share of all cores busy meanwhile (anything)
    log_note: str = ""


class WhipClient:
    """An aiortc publisher in its own thread and event loop."""

    def __init__(self, base: str, course_id: int, key: str, media: Path, codec: str) -> None:
        self.base, self.course_id, self.key = base, course_id, key
        self.media, self.codec = media, codec
        self.posted = 0.0  # time.monotonic() when the offer was sent
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="whip-client", daemon=True)

    def start(self, timeout: float = 30) -> None:
        self._thread.start()
        if not self._ready.wait(timeout) or self.error is not None:
            raise RuntimeError(f"the WHIP client did not start: {self.error!r}")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        player = MediaPlayer(str(self.media), loop=True)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        assert player.video is not None and player.audio is not None
        video = pc.addTransceiver(player.video, direction="sendonly")
        video.setCodecPreferences([
            c for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType == f"video/{self.codec}"
        ])
        pc.addTransceiver(player.audio, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession(self.base) as http:
            self.posted = time.monotonic()
            async with http.post(
                f"/whip/{self.course_id}", data=pc.localDescription.sdp.encode(),
                headers={"Content-Type": "application/sdp",
                         "Authorization": f"Bearer {self.key}"},
            ) as response:
                answer = await response.text()
                if response.status != 201:
                    raise RuntimeError(f"POST answered {response.status}: {answer[:300]}")
                location = response.headers["Location"]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            self._ready.set()
            await self._stop.wait()
            async with http.delete(location) as response:
                await response.read()
        await pc.close()


def encoder_cpu(media: Path, *, seconds: float, preset: str) -> Figures:
    """The re-encode alone, off any server: CPU seconds (all of libx264's threads) per
    second of 720p30 video, as decode+encode minus decode over the same frames."""
    def run(encode: bool) -> float:
        encoder = FrameEncoder(has_video=True, has_audio=False, preset=preset)
        start = time.process_time()
        with av.open(str(media)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index >= seconds * 30:
                    break
                if encode:
                    encoder.video(frame, index * 1000 // 30)
        if encode:
            encoder.flush()
        return time.process_time() - start

    decode_only = run(False)
    both = run(True)
    return Figures("encoder-only", None, (both - decode_only) / seconds, None,
                   f"H.264 720p decode alone: {decode_only / seconds:.2f} cores")


def first_segment_after(server: Academia, since: float, within: float = 60) -> float | None:
    """Seconds from `since` until the first variant's playlist lists a segment."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        url = server.playlist_url(0)
        body = fetch(url) if url else None
        if body and parse_media_playlist(body.decode(errors="replace")):
            return time.monotonic() - since
        time.sleep(0.1)
    return None


def run_case(children: Children, folder: Path, case: str, media: Path, *, duration: float,
             codec: str, preset: str | None) -> Figures:
    protocol, mode = case.split("-")
    server = Academia(children, folder / case, mode=mode, segment_seconds=2, max_streams=4,
                      preset=preset)
    client: WhipClient | None = None
    try:
        url = server.setup_streams(1)[0]
        key = url.rsplit("/", 1)[1]
        if protocol == "whip":
            client = WhipClient(server.base, server.course_ids[0], key, media, codec)
            client.start()
            since = client.posted
        else:
            since = time.monotonic()
            start_publisher(children, media, url, folder / case, "rtmp")
        first = first_segment_after(server, since)
        if first is None:
            return Figures(case, None, None, None, "no segment within 60 s")
        time.sleep(2)  # past the start-up
        cpu0, (busy0, all0), t0 = (tree_cpu_total([server.proc.pid]), machine_busy_seconds(),
                                   time.monotonic())
        time.sleep(duration)
        cpu1, (busy1, all1), t1 = (tree_cpu_total([server.proc.pid]), machine_busy_seconds(),
                                   time.monotonic())
        return Figures(case, first, (cpu1 - cpu0) / (t1 - t0), (busy1 - busy0) / (all1 - all0))
    finally:
        if client is not None:
            client.stop()
            time.sleep(1)
        server.close()
        note = _whip_log_note(server.log)
        if note and protocol == "whip":
            print(f"  {case}: {note}")


def _whip_log_note(log: Path) -> str:
    """The server's own count of re-encoded and dropped frames."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    found = re.findall(r"(\d+) video / (\d+) audio frames encoded, (\d+) dropped", text)
    if not found:
        return ""
    video, audio, dropped = found[-1]
    return f"{video} video / {audio} audio frames re-encoded, {dropped} dropped"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds measured after the first segment (default 30)")
    parser.add_argument("--codec", choices=("VP8", "H264"), default="VP8")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--preset", default=None, help="ACADEMIA_X264_PRESET (default: ours)")
    parser.add_argument("--encoder", action="store_true",
                        help="also measure FrameEncoder alone (10 s of 720p30, this process)")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")

    # Both sides of the WebRTC connection on loopback: the server through its setting
    # (inherited by `academia serve`), this process's client directly.
    os.environ["ACADEMIA_WHIP_ICE_ADDRESSES"] = "127.0.0.1"
    restrict_host_addresses(["127.0.0.1"])
    media = make_input(REPO / "var" / "bench" / "ingest-input.flv")
    children = Children()
    rows: list[Figures] = []
    try:
        with tempfile.TemporaryDirectory(prefix="whip-bench-") as tmp:
            if args.encoder:
                print("encoder-only ...", flush=True)
                rows.append(encoder_cpu(media, seconds=10, preset=args.preset or "veryfast"))
            for case in cases:
                print(f"{case} ...", flush=True)
                rows.append(run_case(children, Path(tmp), case, media, duration=args.duration,
                                     codec=args.codec, preset=args.preset))
    finally:
        children.stop_all()

    print(f"\n720p30, {args.duration:g} s measured per case, WHIP video sent as {args.codec}, "
          f"{os.cpu_count()} cores")
    print(f"{'case':<18} {'POST/publish -> 1st segment':>28} {'server CPU (cores)':>20} "
          f"{'machine busy':>13}")
    for row in rows:
        first = f"{row.first_segment_s:.1f} s" if row.first_segment_s is not None else "-"
        cpu = f"{row.cpu_cores:.2f}" if row.cpu_cores is not None else "-"
        busy = f"{row.machine_busy:.0%}" if row.machine_busy is not None else "-"
        print(f"{row.case:<18} {first:>28} {cpu:>20} {busy:>13} {row.log_note}")
    by_case = {row.case: row.cpu_cores for row in rows}
    whip_pass, rtmp_pass = by_case.get("whip-passthrough"), by_case.get("rtmp-passthrough")
    if whip_pass is not None and rtmp_pass is not None:
        print(f"WebRTC receive + decode + re-encode ~ {whip_pass - rtmp_pass:.2f} cores "
              "(whip passthrough - rtmp passthrough)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
