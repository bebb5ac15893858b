"""The media node's heartbeat task alone, with a fake control plane: it beats at its
interval with the sessions carried now, and a control plane that does not take beats is
logged once and tried again quickly, never stopping the task."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import Callable, Iterable

import pytest

from config.settings import Settings
from mediaserver.node_heartbeat import NodeHeartbeat, node_identity


class Control:
    def __init__(self) -> None:
        self.beats: list[tuple[str, str, set[int]]] = []
        self.away = False

    async def heartbeat(self, name: str, url: str, session_ids: Iterable[int]) -> None:
        if self.away:
            raise ConnectionError("control plane unreachable")
        self.beats.append((name, url, set(session_ids)))


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {within} s")


async def test_beats_carry_the_sessions_and_survive_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mediaserver.node_heartbeat")
    control, carried = Control(), {3}
    heartbeat = NodeHeartbeat(control, name="node-a", url="http://a:8080",
                              sessions=lambda: carried, interval=0.05)
    heartbeat.start()
    await until(lambda: len(control.beats) >= 2)  # again and again
    assert control.beats[0] == ("node-a", "http://a:8080", {3})
    control.away = True
    await asyncio.sleep(0.3)  # several failed beats
    assert caplog.text.count("heartbeat not taken") == 1  # logged once, not per beat
    control.away = False
    carried.add(4)
    await until(lambda: bool(control.beats) and control.beats[-1][2] == {3, 4})
    assert "heartbeats reach the control plane again" in caplog.text
    await heartbeat.close()
    count = len(control.beats)
    await asyncio.sleep(0.1)
    assert len(control.beats) == count


def test_the_node_is_named_after_its_host_unless_configured() -> None:
    settings = Settings()
    host = socket.gethostname()
    assert node_identity(settings) == (host, f"http://{host}:{settings.server.http_port}")
    assert node_identity(settings, 9000) == (host, f"http://{host}:9000")
    named = dataclasses.replace(settings, cluster=dataclasses.replace(
        settings.cluster, node_name="media-1", node_url="http://10.0.0.5:8080"))
    assert node_identity(named, 9000) == ("media-1", "http://10.0.0.5:8080")
