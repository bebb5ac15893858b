"""Writes the committed seed corpora of the fuzz targets (run once; the output is committed).

Real bytes where they exist: Debian's ffmpeg publishes one second of a test pattern and a
tone to a minimal RTMP answerer on loopback (built from our own sans-I/O handshake and
chunk layers), which records everything the client sent. From that capture come the
handshake seeds (ffmpeg's digest C0+C1 and C2), the chunk stream seeds (prefixes of the
post-handshake bytes) and the AMF0 seeds (each command and data message ffmpeg sent). The
FLV seeds are files ffmpeg writes with `-f flv`. Hand-made seeds add the shapes ffmpeg does
not produce (plain handshake, extended timestamps, aggregates, chunk size 1, Enhanced RTMP).

    .venv/bin/python scripts/fuzz/make_seeds.py          # rewrites scripts/fuzz/corpus/*/seed-*
    .venv/bin/python scripts/fuzz/make_seeds.py bodies   # only the request body seeds
    .venv/bin/python scripts/fuzz/make_seeds.py cmaf     # only the CMAF (fragmented MP4) seeds
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mediaserver import amf0  # noqa: E402
from mediaserver.flv import metadata_tag  # noqa: E402
from mediaserver.rtmp import messages  # noqa: E402
from mediaserver.rtmp.chunks import ChunkReader, ChunkWriter, Message  # noqa: E402
from mediaserver.rtmp.handshake import BLOCK_SIZE, ServerHandshake, client_c0c1  # noqa: E402
from transcode.flv_feed import TagKind, flv_header, flv_tag  # noqa: E402
from transcode.hls_playlist import (  # noqa: E402
    Segment,
    render_live_playlist,
    render_recording_playlist,
)

CORPUS = Path(__file__).resolve().parent / "corpus"
FFMPEG = "/usr/bin/ffmpeg"
LAVFI = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-f", "lavfi", "-i",
         "sine=frequency=440:sample_rate=22050"]
ENCODE = ["-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-pix_fmt",
          "yuv420p", "-c:a", "aac", "-b:a", "32k"]


def _write(target: str, seeds: list[bytes]) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("seed-*"):
        old.unlink()
    for data in seeds:
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        (folder / name).write_bytes(data)
    print(f"{target}: {len(set(seeds))} seeds, {sum(map(len, set(seeds)))} bytes")


# --------------------------------------------------------------------------- capture


class _Capture:
    """Answers just enough of RTMP for ffmpeg to publish, and keeps the client's bytes."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.handshake_bytes = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        shake = ServerHandshake()
        chunks = ChunkReader()
        out = ChunkWriter()
        while not shake.done:
            data = await reader.read(65536)
            if not data:
                return
            self.received += data
            writer.write(shake.feed(data))
        self.handshake_bytes = len(self.received) - len(shake.leftover)
        pending = shake.leftover
        while True:
            for message in chunks.feed(pending):
                for reply in self._answer(message):
                    writer.write(out.encode(reply))
            await writer.drain()
            pending = await reader.read(65536)
            if not pending:
                writer.close()
                return
            self.received += pending

    @staticmethod
    def _answer(message: Message) -> list[Message]:
        if message.type_id != messages.MessageType.COMMAND_AMF0:
            return []
        values = amf0.decode_all(message.payload)
        name, txn = values[0], values[1]

        def command(*args: amf0.Amf0Value, stream: int = 0) -> Message:
            return Message(20, stream, 0, amf0.encode(*args), 3)

        if name == "connect":
            return [
                messages.window_ack_size(2_500_000),
                messages.set_peer_bandwidth(2_500_000, messages.LimitType.DYNAMIC),
                command("_result", txn, {"fmsVer": "FMS/3,0,1,123"},
                        {"level": "status", "code": "NetConnection.Connect.Success"}),
            ]
        if name == "createStream":
            return [command("_result", txn, None, 1.0)]
        if name == "publish":
            return [command("onStatus", 0.0, None,
                            {"level": "status", "code": "NetStream.Publish.Start"}, stream=1)]
        return []


async def _capture_ffmpeg() -> tuple[bytes, int]:
    capture = _Capture()
    server = await asyncio.start_server(capture.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-loglevel", "error", "-re", *LAVFI, *ENCODE,
        "-f", "flv", f"rtmp://127.0.0.1:{port}/live/sk_fuzz_seed_key",
    )
    await asyncio.wait_for(process.wait(), 30)
    await asyncio.sleep(0.2)
    server.close()
    return bytes(capture.received), capture.handshake_bytes


def _ffmpeg_flv(extra: list[str]) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.flv"
        subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", *LAVFI, *ENCODE,
                        *extra, "-f", "flv", str(path)], check=True)
        return path.read_bytes()


# --------------------------------------------------------------------------- seeds


def _handshake_seeds(capture: bytes, handshake_bytes: int) -> list[bytes]:
    ffmpeg = capture[:handshake_bytes]
    plain = client_c0c1(False, random_bytes=lambda n: bytes(range(256)) * (n // 256) + bytes(
        n % 256))
    digest1 = client_c0c1(True, scheme=1, random_bytes=lambda n: b"\x5a" * n)
    return [
        ffmpeg,
        ffmpeg + capture[handshake_bytes:handshake_bytes + 200],  # pipelined first chunk
        ffmpeg[: 1 + BLOCK_SIZE],
        plain + plain[1:],
        digest1 + bytes(BLOCK_SIZE),
        plain[:100],
        b"\x06" + plain[1:],  # RTMPE
        b"\x16\x03\x01\x02\x00\x01",  # TLS ClientHello
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x03",
    ]


def _chunk_seeds(stream: bytes) -> list[bytes]:
    seeds = [stream[:n] for n in (256, 700, 1500, 3000, 6000, 12000)]
    writer = ChunkWriter()

    def enc(*items: Message) -> bytes:
        return b"".join(writer.encode(m) for m in items)

    body = bytes(range(256)) * 2
    seeds.append(enc(messages.set_chunk_size(1)) + ChunkWriter(1).encode(
        Message(8, 1, 40, b"\xaf\x01" + body[:60], 4)))
    seeds.append(enc(Message(9, 1, 0x1234567, body, 6), Message(9, 1, 0x1234600, body, 6)))
    seeds.append(enc(Message(8, 1, 5, body, 400), Message(8, 1, 9, body[:10], 70000 % 65599)))
    aggregate = (flv_tag(TagKind.AUDIO, 100, b"\xaf\x01abc")
                 + flv_tag(TagKind.VIDEO, 133, b"\x17\x01\x00\x00\x00xyz"))
    seeds.append(enc(Message(22, 1, 1000, aggregate, 4)))
    seeds.append(enc(messages.abort(4), messages.window_ack_size(5_000_000),
                     messages.ping_request(77), messages.set_peer_bandwidth(10, 2),
                     messages.acknowledgement(1234)))
    # A type-3 chunk starting a new message after a type-0 one (ffmpeg's own habit).
    seeds.append(b"\x04\x00\x00\x10\x00\x00\x03\x08\x01\x00\x00\x00abc\xc4def")
    seeds.append(enc(messages.set_chunk_size(4096), Message(9, 1, 0, body * 8, 6)))
    return seeds


def _amf0_seeds(stream: bytes) -> list[bytes]:
    reader = ChunkReader()
    seeds = [m.payload for m in reader.feed(stream) if m.type_id in (18, 20)]
    seeds += [
        amf0.encode("connect", 1.0, {"app": "live", "tcUrl": "rtmp://h/live",
                                     "objectEncoding": 0.0, "fpad": False}),
        amf0.encode("publish", 5.0, None, "sk_key", "live"),
        amf0.encode(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), [1.0, "a", None, amf0.UNDEFINED]),
        amf0.encode("x" * 70000)[:200],  # a long string marker, cut short
        amf0.encode({"a": {"b": {"c": [{"d": 1.0}]}}}),
        bytes((0x10,)) + b"\x00\x03Cls" + b"\x00\x01kZ" + b"\x00\x00\x09",  # typed object
        bytes((0x0F,)) + b"\x00\x00\x00\x05<a/>x",  # XML document
        bytes((0x08,)) + b"\x00\x00\x00\x01" + b"\x00\x01k\x00" + bytes(8) + b"\x00\x00\x09",
        b"\x11\x02",  # AVM+ switch
        b"\x07\x00\x01",  # reference
    ]
    return seeds


def _flv_seeds(files: list[bytes]) -> list[bytes]:
    seeds = [data[:n] for data in files for n in (600, 4000)]
    header = flv_header()
    enhanced = (flv_tag(TagKind.VIDEO, 0, b"\x90hvc1\x00\x00") +
                flv_tag(TagKind.AUDIO, 0, b"\x90mp4a"))
    meta = metadata_tag({"videocodecid": 7.0, "audiocodecid": 10.0, "width": 160.0})
    hevc_meta = metadata_tag({"videocodecid": float(0x68766331)})
    set_data_frame = flv_tag(TagKind.SCRIPT, 0, amf0.encode(
        "@setDataFrame", "onMetaData", amf0.EcmaArray(videocodecid=7.0)))
    seeds += [header + enhanced, header + meta, header + hevc_meta, set_data_frame,
              header + flv_tag(TagKind.VIDEO, 0xFFFFFFFF, b"\x17\x00\x00\x00\x00\x01")]
    return seeds


def _playlist_seeds() -> list[bytes]:
    segments = [Segment("0.ts", 2.0), Segment("1.ts", 2.002, True), Segment("2.ts", 1.5)]
    ffmpeg_style = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
                    "#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.000000,\nseg_7.ts\n#EXTINF:2.0,\n")
    texts = [
        render_live_playlist(segments, media_sequence=4, discontinuity_sequence=1),
        render_recording_playlist(segments, ended=True),
        render_recording_playlist(segments, ended=False),
        ffmpeg_style,
        "\ufeff#EXTM3U\r\n#EXT-X-DISCONTINUITY-SEQUENCE:3\r\n#EXTINF:1e3,title\r\na.ts\r\n",
        "#EXTM3U\n#EXT-X-ENDLIST\n",
        "not a playlist",
    ]
    return [text.encode() for text in texts]


def _storage_key_seeds() -> list[bytes]:
    # Input layout of the storage_keys target: fields separated by NUL (see the target).
    fields = [
        ["42", "master.m3u8", "bytes=0-99", "live/42/hd/index.m3u8"],
        ["7", "hd/12.ts", "bytes=-500", "recordings/7/recording.mp4"],
        ["123456789012345678", "recording.mp4", "bytes=100-", "live/1/"],
        ["1", "../etc/passwd", "bytes=5-2", "a/../b"],
        ["01", "sd/000000000001.ts", "bytes=0-0,5-9", "session-12.mp4"],
    ]
    seeds = [b"\x00".join(f.encode() for f in row) for row in fields]
    header = {"op": "put", "key": "live/3/hd/1.ts", "content_type": "video/mp2t",
              "also": ["recordings/3/hd/1.ts"]}
    seeds.append(b"\x00\x00\x00" + json.dumps(header).encode() + b"\nbody")
    seeds.append(b"\x00\x00\x00" + json.dumps({"op": "delete_prefix", "key": "live/3/"}).encode())
    return seeds


def _example(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A value of the JSON schema's type: the smallest that fits its bounds."""
    if "$ref" in schema:
        return _example(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return _example(schema[key][0], defs)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _example(sub, defs) for name, sub in properties.items()}
    if kind == "array":
        return []
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if schema.get("format") == "date-time":
        return "2026-12-01T10:00:00Z"
    if schema.get("format") == "date":
        return "2026-12-01"
    return "x" * max(1, int(schema.get("minLength", 1)))


def _body_seeds() -> list[bytes]:
    # Input layout of the bodies target: one byte choosing the model, then the body (bytes
    # below 0xC0 pick a body model, the rest a query model, as fuzz_bodies.check does).
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fuzz_bodies import BODIES, QUERIES

    seeds = []
    for index, model in enumerate(BODIES):
        schema = model.model_json_schema()
        body = _example(schema, schema.get("$defs", {}))
        seeds.append(bytes((index,)) + json.dumps(body).encode())
    for index, model in enumerate(QUERIES):
        choice = next(c for c in range(0xC0, 0x100) if c % len(QUERIES) == index)
        schema = model.model_json_schema()
        fields = _example(schema, schema.get("$defs", {}))
        query = "&".join(f"{k}={v}" for k, v in fields.items() if not isinstance(v, list))
        seeds.append(bytes((choice,)) + query.encode())
    seeds += [b"\x00{", b"\x01" + b"[" * 50, b'\x02{"a": 1e400}', b'\x03"\\ud800"']
    return seeds


_CMAF_MOVFLAGS = ["-f", "mp4", "-movflags",
                  "+frag_keyframe+empty_moov+default_base_moof+cmaf+skip_trailer",
                  "-frag_duration", "183000"]


def _ffmpeg_cmaf(extra: list[str]) -> bytes:
    """ffmpeg's LL-HLS fragmented MP4 (as a rendition's upload carries it) of 2 s of test
    pattern and/or tone, small enough that a few fragments fit the target's max_len."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.mp4"
        subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *LAVFI, "-t", "2",
                        *extra, *_CMAF_MOVFLAGS, str(out)], check=True, timeout=60)
        return out.read_bytes()


def _cmaf_box(kind: bytes, payload: bytes = b"", large: bool = False) -> bytes:
    if large:
        return (1).to_bytes(4, "big") + kind + (16 + len(payload)).to_bytes(8, "big") + payload
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def _cmaf_seeds() -> list[bytes]:
    # 64x48 at a low quality: a keyframe must fit the target's 4 KiB box limit.
    video = ["-s", "64x48", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "40",
             "-pix_fmt", "yuv420p", "-force_key_frames", "expr:gte(t,n_forced*1)", "-g", "10"]
    audio = ["-c:a", "aac", "-b:a", "32k"]
    streams = [_ffmpeg_cmaf([*video, "-an"]), _ffmpeg_cmaf(["-vn", *audio]),
               _ffmpeg_cmaf([*video, *audio, "-avoid_negative_ts", "make_zero"])]
    seeds = []
    for data in streams:
        seeds.append(data[:8192])
        # The init alone, and the init with half of its first moof.
        init_size = int.from_bytes(data[:4], "big")
        init_size += int.from_bytes(data[init_size : init_size + 4], "big")
        seeds += [data[:init_size], data[: init_size + 100]]
        # Boxes the packager drops, and a 64-bit size, between the init and the fragments.
        extra = _cmaf_box(b"styp", b"msdhmsdh") + _cmaf_box(b"free", b"x", large=True)
        seeds.append((data[:init_size] + extra + data[init_size:])[:8192])
    # The splitter's refusals: size 0, a size below the header, a largesize below it.
    seeds += [bytes(4) + b"mdat", b"\x00\x00\x00\x07mdat",
              _cmaf_box(b"mdat", large=True)[:12] + bytes(3) + b"\x0f"]
    return seeds


def main() -> None:
    if sys.argv[1:] == ["bodies"]:  # the only seeds that do not need ffmpeg
        _write("bodies", _body_seeds())
        return
    if sys.argv[1:] == ["cmaf"]:  # added later: the other corpora stay as committed
        _write("cmaf", _cmaf_seeds())
        return
    capture, handshake_bytes = asyncio.run(_capture_ffmpeg())
    if handshake_bytes != 1 + 2 * BLOCK_SIZE:
        raise SystemExit(f"unexpected capture: handshake took {handshake_bytes} bytes")
    stream = capture[handshake_bytes:]
    flv_files = [_ffmpeg_flv([]), _ffmpeg_flv(["-an"]), _ffmpeg_flv(["-vn"])]
    _write("handshake", _handshake_seeds(capture, handshake_bytes))
    _write("chunks", _chunk_seeds(stream))
    _write("amf0", _amf0_seeds(stream))
    _write("flv", _flv_seeds(flv_files))
    _write("playlist", _playlist_seeds())
    _write("storage_keys", _storage_key_seeds())
    _write("bodies", _body_seeds())
    _write("cmaf", _cmaf_seeds())


if __name__ == "__main__":
    main()
