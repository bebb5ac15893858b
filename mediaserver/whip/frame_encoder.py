"""Re-encoding the frames aiortc decoded into what a transcode worker reads: FLV tag
bodies of H.264 (libx264) and AAC (48 kHz stereo), preceded by onMetaData.

aiortc always decodes what it receives (VP8 or H.264 video, Opus audio); the worker
takes FLV with H.264 and AAC, so each WHIP publish pays one extra encode here. An
instance is used from one thread only (the publish's encoder thread): nothing here is
safe to share, and nothing here may run on the event loop.

Output tags carry the caller's millisecond timestamps: video keeps them (no B-frames, so
composition time 0), audio is timed by its sample count from the track's first frame,
realigned when the source jumps (lost packets, a paused track).
"""

from __future__ import annotations

import fractions
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.fifo import AudioFifo
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType

from mediaserver.amf0 import Amf0Value
from mediaserver.whip.avc import decoder_configuration_record, length_prefixed, split_annex_b

__all__ = ["EncodedTag", "FrameEncoder"]

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
_AAC_FRAME = 1024
_MS = fractions.Fraction(1, 1000)
_SAMPLES = fractions.Fraction(1, AUDIO_RATE)
# FLV: codec id 7 is AVC; frame type 1 key, 2 inter; AVC packet type 0 config, 1 NALUs.
_AVC = 7
# FLV audio byte 0 for AAC: format 10, "44 kHz", 16-bit, stereo (AAC's real parameters
# are in its AudioSpecificConfig); byte 1: 0 config, 1 raw frame.
_AAC_HEADER = 0xAF
# An audio source further than this from its sample clock is realigned, not stretched.
_AUDIO_REALIGN_MS = 250


@dataclass(frozen=True)
class EncodedTag:
    """One thing for the sink: onMetaData (`metadata`) or an audio/video tag body."""

    kind: Literal["metadata", "audio", "video"]
    ts_ms: int
    body: bytes = b""
    metadata: dict[str, Amf0Value] = field(default_factory=dict)


class FrameEncoder:
    """Decoded WebRTC frames in, FLV tag bodies out. `has_video`: wait for the first
    video frame (its size is the stream's) before anything is sent."""

    def __init__(self, *, has_video: bool, has_audio: bool, preset: str = "veryfast",
                 video_kbps: int = 3000, audio_kbps: int = 128,
                 keyframe_seconds: float = 2.0) -> None:
        self.has_video = has_video
        self.has_audio = has_audio
        self._preset = preset
        self._video_kbps = video_kbps
        self._audio_kbps = audio_kbps
        self._keyframe_ms = int(keyframe_seconds * 1000)
        self._video: VideoCodecContext | None = None
        self._audio: AudioCodecContext | None = None
        self._resampler: av.AudioResampler | None = None
        self._fifo: AudioFifo | None = None
        self._started = False
        self._next_keyframe = 0
        self._last_video_ts = -1
        self._audio_base_ms = 0
        self._samples_in = 0  # samples put in the fifo since the base
        self._samples_out = 0  # samples given to the AAC encoder since the base
        self._last_audio_ts = -1
        self.width = 0
        self.height = 0
        self.video_frames = 0
        self.audio_frames = 0
        self.early_audio_frames = 0  # before the first video frame: not sent

    # ------------------------------------------------------------------ start

    def _metadata(self) -> EncodedTag:
        data: dict[str, Amf0Value] = {"encoder": "Academia Live WHIP"}
        if self.has_video:
            data.update(width=float(self.width), height=float(self.height),
                        videocodecid=float(_AVC), videodatarate=float(self._video_kbps))
        if self.has_audio:
            data.update(audiocodecid=10.0, audiosamplerate=float(AUDIO_RATE),
                        audiodatarate=float(self._audio_kbps), stereo=True)
        return EncodedTag("metadata", 0, metadata=data)

    def _open_video(self, frame: av.VideoFrame) -> list[EncodedTag]:
        # yuv420p needs even dimensions.
        self.width, self.height = frame.width & ~1, frame.height & ~1
        codec = av.CodecContext.create("libx264", "w")
        assert isinstance(codec, VideoCodecContext)
        codec.width, codec.height = self.width, self.height
        codec.pix_fmt = "yuv420p"
        codec.time_base = _MS
        codec.bit_rate = self._video_kbps * 1000
        # Keyframes are forced by time below; the GOP limit is only a backstop.
        codec.gop_size = 600
        codec.options = {
            "preset": self._preset,
            "tune": "zerolatency",
            "forced-idr": "1",
            "maxrate": f"{self._video_kbps}k",
            "bufsize": f"{self._video_kbps * 2}k",
        }
        codec.flags |= av.codec.context.Flags.global_header
        codec.open()
        self._video = codec
        config = decoder_configuration_record(split_annex_b(bytes(codec.extradata or b"")))
        return [EncodedTag("video", 0, bytes((0x10 | _AVC, 0, 0, 0, 0)) + config)]

    def _open_audio(self) -> list[EncodedTag]:
        codec = av.CodecContext.create("aac", "w")
        assert isinstance(codec, AudioCodecContext)
        codec.sample_rate = AUDIO_RATE
        codec.layout = "stereo"
        codec.format = "fltp"
        codec.bit_rate = self._audio_kbps * 1000
        codec.time_base = _SAMPLES
        codec.open()
        self._audio = codec
        self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        self._fifo = AudioFifo()
        config = bytes(codec.extradata or b"")
        return [EncodedTag("audio", 0, bytes((_AAC_HEADER, 0)) + config)]

    def _start(self, first_video: av.VideoFrame | None) -> list[EncodedTag]:
        out: list[EncodedTag] = []
        if first_video is not None:
            video_config = self._open_video(first_video)
        else:
            video_config = []
        out.append(self._metadata())
        out += video_config
        if self.has_audio:
            out += self._open_audio()
        self._started = True
        return out

    # ------------------------------------------------------------------ video

    def video(self, frame: av.VideoFrame, ts_ms: int) -> list[EncodedTag]:
        """Encode one decoded frame shown at `ts_ms` (increasing across calls)."""
        out: list[EncodedTag] = []
        if not self._started:
            out += self._start(frame)
        codec = self._video
        if codec is None:
            return out  # a track the offer did not announce as video: ignored
        ts_ms = max(ts_ms, self._last_video_ts + 1)
        self._last_video_ts = ts_ms
        if (frame.width, frame.height, frame.format.name) != (codec.width, codec.height,
                                                              "yuv420p"):
            # The browser lowered its resolution (bandwidth, CPU): keep the stream's size.
            frame = frame.reformat(width=codec.width, height=codec.height, format="yuv420p")
        frame.pts = ts_ms
        frame.time_base = _MS
        if ts_ms >= self._next_keyframe:
            frame.pict_type = PictureType.I
            self._next_keyframe = ts_ms + self._keyframe_ms
        else:
            # A decoded keyframe says I: that must not force one here.
            frame.pict_type = PictureType.NONE
        self.video_frames += 1
        return out + self._video_packets(codec.encode(frame))

    def _video_packets(self, packets: list[av.Packet[Any]]) -> list[EncodedTag]:
        out = []
        for packet in packets:
            if packet.pts is None or packet.dts is None:
                continue
            dts, cts = int(packet.dts), int(packet.pts - packet.dts)
            frame_type = 1 if packet.is_keyframe else 2
            header = bytes((frame_type << 4 | _AVC, 1)) + cts.to_bytes(3, "big", signed=True)
            out.append(EncodedTag("video", dts,
                                  header + length_prefixed(split_annex_b(bytes(packet)))))
        return out

    # ------------------------------------------------------------------ audio

    def audio(self, frame: av.AudioFrame, ts_ms: int) -> list[EncodedTag]:
        """Encode one decoded audio frame whose first sample plays at `ts_ms`."""
        out: list[EncodedTag] = []
        if not self._started:
            if self.has_video:
                self.early_audio_frames += 1
                return out  # the stream starts with its first picture
            out += self._start(None)
        codec, resampler, fifo = self._audio, self._resampler, self._fifo
        if codec is None or resampler is None or fifo is None:
            return out
        if self._samples_in == 0 and self._samples_out == 0:
            self._audio_base_ms = ts_ms
        expected = self._audio_base_ms + self._samples_in * 1000 // AUDIO_RATE
        if abs(ts_ms - expected) > _AUDIO_REALIGN_MS:
            # A gap or a jump in the source: continue from its time, drop what is pending.
            self._audio_base_ms = ts_ms
            self._samples_in = self._samples_out = 0
            fifo = self._fifo = AudioFifo()
        frame.pts = None
        for converted in resampler.resample(frame):
            converted.pts = None
            self._samples_in += converted.samples
            fifo.write(converted)
        self.audio_frames += 1
        while fifo.samples >= _AAC_FRAME:
            chunk = fifo.read(_AAC_FRAME)
            if chunk is None:
                break
            out += self._encode_audio(codec, chunk)
        return out

    def _encode_audio(self, codec: AudioCodecContext, chunk: av.AudioFrame | None
                      ) -> list[EncodedTag]:
        if chunk is not None:
            chunk.pts = self._samples_out
            chunk.time_base = _SAMPLES
            chunk.sample_rate = AUDIO_RATE
            self._samples_out += chunk.samples
        out = []
        for packet in codec.encode(chunk):
            pts = max(int(packet.pts or 0), 0)
            ts = max(self._audio_base_ms + pts * 1000 // AUDIO_RATE, self._last_audio_ts)
            self._last_audio_ts = ts
            out.append(EncodedTag("audio", ts, bytes((_AAC_HEADER, 1)) + bytes(packet)))
        return out

    # ------------------------------------------------------------------ end

    def flush(self) -> list[EncodedTag]:
        """The frames the encoders still hold (the publish ends)."""
        out: list[EncodedTag] = []
        try:
            if self._video is not None:
                out += self._video_packets(self._video.encode(None))
            if self._audio is not None:
                out += self._encode_audio(self._audio, None)
        except av.FFmpegError as exc:
            log.debug("flushing the WHIP encoders: %s", exc)
        return out
