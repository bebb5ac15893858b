"""A scripted RTMP client built from our own RTMP modules: it speaks to the server over a real
socket as an encoder would (the OBS command sequence), with made-up AVC and AAC frames."""

from __future__ import annotations

import asyncio
import time

from mediaserver import amf0
from mediaserver.amf0 import Amf0Value, EcmaArray
from mediaserver.rtmp import messages
from mediaserver.rtmp.chunks import ChunkReader, ChunkWriter, Message
from mediaserver.rtmp.handshake import BLOCK_SIZE, client_c0c1, client_c2, verify_server_s2
from mediaserver.rtmp.messages import MessageType

GOOD_KEY = "sk_good_0123456789abcdef"


def avc_frame(n: int, size: int = 900) -> bytes:
    keyframe = 0x17 if n % 30 == 0 else 0x27
    return bytes([keyframe, 0x01, 0, 0, 0]) + bytes((n + i) % 256 for i in range(size))


def aac_frame(n: int) -> bytes:
    return bytes([0xAF, 0x01]) + bytes((n * 3 + i) % 256 for i in range(200))


class Client:
    """Speaks RTMP with our own modules, like an encoder would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.chunks = ChunkReader()
        self.out = ChunkWriter()
        self.inbox: list[Message] = []
        self.received: list[Message] = []  # everything, in order

    @classmethod
    async def open(cls, port: int, source: str | None = None) -> Client:
        """Connects from `source` (another loopback address: 127.0.0.2, ...) if given."""
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        return cls(reader, writer)

    async def read_exactly(self, size: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(size), 5)

    async def handshake(self, *, digest: bool = False) -> None:
        c0c1 = client_c0c1(digest)
        self.writer.write(c0c1)
        s0 = await self.read_exactly(1)
        assert s0 == b"\x03"
        s1 = await self.read_exactly(BLOCK_SIZE)
        s2 = await self.read_exactly(BLOCK_SIZE)
        assert verify_server_s2(c0c1[1:], s2)
        self.writer.write(client_c2(s1))

    def send(self, *outgoing: Message) -> None:
        for message in outgoing:
            self.writer.write(self.out.encode(message))

    def set_chunk_size(self, size: int) -> None:
        self.send(messages.set_chunk_size(size))
        self.out.set_chunk_size(size)

    def command(self, *values: Amf0Value, stream_id: int = 0, csid: int = 3) -> None:
        self.send(Message(MessageType.COMMAND_AMF0, stream_id, 0, amf0.encode(*values), csid))

    def media(self, type_id: int, ts: int, payload: bytes, stream_id: int = 1) -> None:
        csid = 6 if type_id == MessageType.VIDEO else 4
        self.send(Message(type_id, stream_id, ts, payload, csid))

    def metadata(self, data: dict[str, Amf0Value], stream_id: int = 1) -> None:
        payload = amf0.encode("@setDataFrame", "onMetaData", EcmaArray(data))
        self.send(Message(MessageType.DATA_AMF0, stream_id, 0, payload, 4))

    async def receive(self, within: float = 5.0) -> Message:
        while not self.inbox:
            data = await asyncio.wait_for(self.reader.read(65536), within)
            if not data:
                raise EOFError("server closed the connection")
            got = self.chunks.feed(data)
            self.inbox += got
            self.received += got
        return self.inbox.pop(0)

    async def next_command(self) -> list[Amf0Value]:
        """The next command message's values, skipping protocol control messages."""
        while True:
            message = await self.receive()
            if message.type_id == MessageType.COMMAND_AMF0:
                return amf0.decode_all(message.payload)

    async def closed(self, within: float = 5.0) -> bool:
        """True once the server has closed the connection (reads EOF or a reset)."""
        deadline = time.monotonic() + within
        try:
            while time.monotonic() < deadline:
                data = await asyncio.wait_for(self.reader.read(65536), deadline - time.monotonic())
                if not data:
                    return True
                self.inbox += self.chunks.feed(data)
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        return False

    def close(self) -> None:
        self.writer.transport.abort()

    # The OBS sequence -----------------------------------------------------------------

    async def connect(self, app: str = "live") -> list[Amf0Value]:
        # OBS sends its Set Chunk Size before connect.
        self.set_chunk_size(4096)
        self.command(
            "connect", 1.0,
            {"app": app, "type": "nonprivate", "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
             "swfUrl": f"rtmp://127.0.0.1/{app}", "tcUrl": f"rtmp://127.0.0.1/{app}"},
        )
        return await self.next_command()

    async def create_stream(self, key: str) -> float:
        # Fired together, without waiting, as OBS does.
        self.command("releaseStream", 2.0, None, key)
        self.command("FCPublish", 3.0, None, key)
        self.command("createStream", 4.0, None)
        replies = [await self.next_command() for _ in range(4)]
        assert replies[0] == ["_result", 2.0, None]
        assert replies[1] == ["_result", 3.0, None]
        assert replies[2][0] == "onFCPublish"
        assert not key or key not in repr(replies[2])
        assert replies[3] == ["_result", 4.0, None, 1.0]
        stream_id = replies[3][3]
        assert isinstance(stream_id, float)
        return stream_id

    async def publish(self, key: str, stream_id: int = 1) -> dict[str, Amf0Value]:
        """Sends publish; returns the onStatus info object."""
        self.command("publish", 5.0, None, key, "live", stream_id=stream_id, csid=4)
        reply = await self.next_command()
        assert reply[:3] == ["onStatus", 0.0, None], reply
        info = reply[3]
        assert isinstance(info, dict)
        return info

    async def start_publishing(self, key: str = GOOD_KEY, *, digest: bool = False) -> None:
        await self.handshake(digest=digest)
        await self.connect()
        stream_id = await self.create_stream(key)
        info = await self.publish(key, int(stream_id))
        assert info["code"] == "NetStream.Publish.Start", info

    def stream_media(self, frames: range) -> None:
        for n in frames:
            self.media(MessageType.VIDEO, n * 33, avc_frame(n))
            self.media(MessageType.AUDIO, n * 23, aac_frame(n))
